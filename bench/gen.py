"""Deterministic generators of realistic Python trees for the benchmark.

Most files are ordinary library code (classes, dataclasses, helpers, 150-300 lines); about
3% are training scripts of varied shapes (plain, accumulation, AMP, GAN, LBFGS closure,
manual SGD, Lightning, Accelerate, step functions, a few real bugs), and about 3% are
library files that mention both "backward" and "step" without training anything (so the
byte prefilter lets them through and they are parsed, as happens in real repositories).
"""
from __future__ import annotations

import os
import random

WORDS = ("data batch record item entry node graph cache store index table query block frame token "
         "buffer chunk layer shard worker task job event signal metric report config option value "
         "result status state path file stream reader writer parser schema field column row key "
         "user account session request response client server handler router plugin loader").split()
STDLIB = ("os", "re", "json", "math", "time", "logging", "itertools", "functools", "collections",
          "pathlib", "typing", "dataclasses", "hashlib", "textwrap", "enum", "contextlib")


def _name(rng: random.Random, parts: int = 2) -> str:
    return "_".join(rng.choice(WORDS) for _ in range(parts))


def _camel(rng: random.Random) -> str:
    return "".join(rng.choice(WORDS).title() for _ in range(2))


def _function(rng: random.Random, name: str, indent: str, method: bool) -> list[str]:
    """A helper of 8-25 lines: docstring, branches, a loop, a comprehension, f-strings."""
    args = [_name(rng, 1) + str(i) for i in range(rng.randint(1, 3))]
    sig = ", ".join((["self"] if method else []) + [f"{a}: int" for a in args[:-1]] + [f"{args[-1]}=None"])
    acc, it = _name(rng, 1) + "_out", rng.choice(WORDS)
    lines = [f"def {name}({sig}) -> list:", f'    """Return the {rng.choice(WORDS)}s of the given {rng.choice(WORDS)}."""',
             f"    {acc} = []"]
    if rng.random() < 0.6:
        lines += [f"    if {args[-1]} is None:", f"        {args[-1]} = {rng.randint(1, 64)}"]
    lines += [f"    for {it} in range({args[0]}):",
              f"        if {it} % {rng.randint(2, 9)} == 0:",
              f"            {acc}.append({{'{rng.choice(WORDS)}': {it}, 'label': f\"{{{it}:04d}}\"}})",
              f"        elif {it} > {rng.randint(10, 99)}:",
              "            break",
              "        else:",
              f"            {acc}.extend(x * 2 for x in range({it}) if x != {rng.randint(0, 5)})"]
    if rng.random() < 0.5:
        lines += ["    try:", f"        {acc}.sort(key=lambda v: str(v))", "    except TypeError as exc:",
                  f"        logger.warning(\"cannot sort %s: %s\", {name!r}, exc)"]
    if method and rng.random() < 0.5:
        lines += [f"    self._{rng.choice(WORDS)}_count += len({acc})"]
    lines += [f"    return {acc}", ""]
    return [indent + line if line else "" for line in lines]


def _class(rng: random.Random, mention: bool) -> list[str]:
    name = _camel(rng)
    fields = [_name(rng, 1) + str(i) for i in range(rng.randint(2, 5))]
    lines = ["", "", f"class {name}:", f'    """A {rng.choice(WORDS)} of {rng.choice(WORDS)}s, kept in memory."""', "",
             "    def __init__(self, " + ", ".join(f"{f}: int = {i}" for i, f in enumerate(fields)) + ") -> None:"]
    lines += [f"        self.{f} = {f}" for f in fields] + ["        self._items: dict[str, list] = {}", ""]
    lines += ["    @property", "    def size(self) -> int:", "        return sum(len(v) for v in self._items.values())", ""]
    for _ in range(rng.randint(2, 5)):
        lines += _function(rng, _name(rng), "    ", method=True)
    if mention:
        # Both words appear, as in schedulers and compatibility shims: a prefilter false positive.
        lines += ["    def advance(self, step: int = 1) -> None:",
                  '        """Move forward by `step` (kept for backward compatibility)."""',
                  "        self._items.setdefault('steps', []).append(step)", ""]
    lines += [f"    def __repr__(self) -> str:", f"        return f\"{name}({', '.join(f'{f}={{self.{f}!r}}' for f in fields)})\"", ""]
    return lines


def library_module(rng: random.Random, mention: bool = False) -> str:
    """Ordinary library code, about 150-300 lines."""
    lines = [f'"""Utilities for {rng.choice(WORDS)} {rng.choice(WORDS)} handling."""', "from __future__ import annotations", ""]
    modules = {"logging", *rng.sample(STDLIB, rng.randint(1, 5))}
    lines += [f"import {m}" for m in sorted(modules)]
    lines += ["", "logger = logging.getLogger(__name__)", ""]
    lines += [f"{_name(rng).upper()} = {rng.randint(1, 10_000)}" for _ in range(rng.randint(1, 4))]
    target = rng.randint(150, 300)
    mentioned = not mention
    while len(lines) < target:
        if rng.random() < 0.45:
            lines += _class(rng, mention=not mentioned)
            mentioned = True
        else:
            lines += ["", ""] + _function(rng, _name(rng), "", method=False)
    return "\n".join(lines) + "\n"


def _model_block(rng: random.Random) -> list[str]:
    hidden = rng.choice((64, 128, 256, 512))
    return ["class Net(nn.Module):", "    def __init__(self):", "        super().__init__()",
            f"        self.body = nn.Sequential(nn.Linear(32, {hidden}), nn.ReLU(), nn.Linear({hidden}, 10))", "",
            "    def forward(self, x):", "        return self.body(x)", ""]


LOOPS = {
    "plain": ["    for x, y in loader:", "        optimizer.zero_grad()", "        loss = criterion(model(x), y)",
              "        loss.backward()", "        optimizer.step()"],
    "set_to_none": ["    for i, (x, y) in enumerate(loader):", "        out = model(x)", "        loss = criterion(out, y)",
                    "        optimizer.zero_grad(set_to_none=True)", "        loss.backward()",
                    "        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)", "        optimizer.step()"],
    "accumulate": ["    for i, (x, y) in enumerate(loader):", "        loss = criterion(model(x), y) / accum_steps",
                   "        loss.backward()", "        if (i + 1) % accum_steps == 0:", "            optimizer.step()",
                   "            optimizer.zero_grad()"],
    "amp": ["    scaler = torch.cuda.amp.GradScaler()", "    for x, y in loader:", "        optimizer.zero_grad()",
            "        with torch.autocast('cuda'):", "            loss = criterion(model(x), y)",
            "        scaler.scale(loss).backward()", "        scaler.step(optimizer)", "        scaler.update()"],
    "closure": ["    for x, y in loader:", "        def closure():", "            optimizer.zero_grad()",
                "            loss = criterion(model(x), y)", "            loss.backward()", "            return loss",
                "        optimizer.step(closure)"],
    "manual": ["    for x, y in loader:", "        loss = criterion(model(x), y)", "        loss.backward()",
               "        with torch.no_grad():", "            for p in model.parameters():", "                p -= 0.01 * p.grad",
               "                p.grad = None"],
    "bug_zg002": ["    for x, y in loader:", "        loss = criterion(model(x), y)", "        loss.backward()",
                  "        optimizer.zero_grad()", "        optimizer.step()"],
    "bug_zg001": ["    for x, y in loader:", "        loss = criterion(model(x), y)", "        loss.backward()",
                  "        optimizer.step()", "        scheduler.step()"],
}


def _step_function() -> list[str]:
    return ["def train_step(model, optimizer, batch):", "    x, y = batch", "    optimizer.zero_grad()",
            "    loss = F.cross_entropy(model(x), y)", "    loss.backward()", "    optimizer.step()",
            "    return loss.item()", ""]


def training_module(rng: random.Random) -> str:
    """A training script: imports, a model, an eval loop, one training loop shape, padding
    helpers so the file has a realistic length."""
    shape = rng.choice(sorted(LOOPS))
    lines = ['"""Train a small classifier."""', "import argparse", "import torch", "import torch.nn as nn",
             "import torch.nn.functional as F", "", *_model_block(rng),
             "def evaluate(model, loader):", "    model.eval()", "    correct = 0", "    with torch.no_grad():",
             "        for x, y in loader:", "            correct += (model(x).argmax(1) == y).sum().item()",
             "    return correct", "", *_step_function(),
             "def train(model, loader, epochs, accum_steps=4):",
             "    criterion = nn.CrossEntropyLoss()",
             f"    optimizer = torch.optim.{rng.choice(('SGD', 'Adam', 'AdamW'))}(model.parameters(), lr=1e-3)",
             "    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 10)" if shape == "bug_zg001" else "    pass",
             "    for epoch in range(epochs):" if rng.random() < 0.5 else "    if epochs:"]
    lines += ["    " + line for line in LOOPS[shape]]
    lines += ["    return model", ""]
    helpers = library_module(rng).splitlines()[3:]
    # Cut before a top-level definition, never inside one.
    cuts = [i for i, line in enumerate(helpers) if line.startswith(("def ", "class ")) and 40 <= i <= 160]
    lines += helpers[: rng.choice(cuts) if cuts else len(helpers)]
    lines += ["", "", "if __name__ == '__main__':", "    parser = argparse.ArgumentParser()",
              "    parser.add_argument('--epochs', type=int, default=3)", "    args = parser.parse_args()",
              "    train(Net(), [], args.epochs)", ""]
    return "\n".join(lines)


def generate_tree(root: str, files: int, seed: int = 7) -> dict[str, int]:
    """Write ``files`` modules under ``root`` (packages of 20-60 modules); returns counts."""
    rng = random.Random(seed)
    counts = {"training": 0, "mentions": 0, "library": 0}
    package, left = 0, 0
    for i in range(files):
        if left == 0:
            package, left = package + 1, rng.randint(20, 60)
            os.makedirs(os.path.join(root, f"pkg{package:03d}"), exist_ok=True)
        left -= 1
        roll = rng.random()
        kind = "training" if roll < 0.03 else "mentions" if roll < 0.06 else "library"
        counts[kind] += 1
        text = training_module(rng) if kind == "training" else library_module(rng, mention=(kind == "mentions"))
        with open(os.path.join(root, f"pkg{package:03d}", f"mod{i:05d}.py"), "w", encoding="utf-8") as out:
            out.write(text)
    return counts


# ----- large training scripts (300-1,500 lines), for the candidate-dense benchmark ---------
TRAINER_CLASS = '''

class Trainer:
    """Owns the model, the optimizer and the loop; helpers split the work across methods."""

    def __init__(self, model, loader, epochs={epochs}, accum_steps={accum}, use_amp=False):
        self.model = model
        self.loader = loader
        self.epochs = epochs
        self.accum_steps = accum_steps
        self.use_amp = use_amp
        self.optimizer = torch.optim.{opt}(model.parameters(), lr={lr})
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=epochs)
        self.scaler = torch.cuda.amp.GradScaler(enabled=use_amp)
        self.history = []

    def _forward(self, batch):
        x, y = batch
        with torch.autocast("cpu", enabled=self.use_amp):
            logits = self.model(x)
            return F.cross_entropy(logits, y)

    def _backward(self, loss):
        self.scaler.scale(loss / self.accum_steps).backward()

    def _update(self):
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def train_epoch(self, epoch):
        self.model.train()
        total = 0.0
        for i, batch in enumerate(self.loader):
            loss = self._forward(batch)
            self._backward(loss)
            if (i + 1) % self.accum_steps == 0:
                self._update()
            total += loss.item()
            if i % 50 == 0:
                self.log(epoch, i, loss.item())
        self.scheduler.step()
        return total / max(1, len(self.loader))

    def log(self, epoch, i, value):
        self.history.append((epoch, i, value))
        logger.info("epoch %d batch %d loss %.4f", epoch, i, value)

    def fit(self):
        for epoch in range(self.epochs):
            mean = self.train_epoch(epoch)
            self.save(f"checkpoint_{{epoch:03d}}.pt", mean)
        return self.history

    def save(self, path, metric):
        state = {{"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "metric": metric}}
        torch.save(state, path)
'''

GAN_LOOP = '''

def train_gan(generator, discriminator, loader, epochs={epochs}, latent={latent}):
    """Two optimizers; the discriminator is zeroed before its own backward."""
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    criterion = nn.BCEWithLogitsLoss()

    def sample(n):
        return torch.randn(n, latent)

    for epoch in range(epochs):
        for real, _ in loader:
            n = real.size(0)
            fake = generator(sample(n))
            opt_d.zero_grad()
            loss_d = criterion(discriminator(real), torch.ones(n, 1)) + criterion(discriminator(fake.detach()), torch.zeros(n, 1))
            loss_d.backward()
            opt_d.step()
            opt_g.zero_grad()
            loss_g = criterion(discriminator(fake), torch.ones(n, 1))
            loss_g.backward()
            opt_g.step()
    return generator
'''

STEP_FUNCTION_LOOP = '''

def make_step(model, optimizer, clip={clip}):
    """A per-batch step function handed to a small engine."""

    def step(batch):
        x, y = batch
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        return loss.item()

    return step


def run_engine(step, loader, epochs={epochs}):
    losses = []
    for _ in range(epochs):
        losses.extend(step(batch) for batch in loader)
    return losses
'''

BUGGY_LOOP = '''

def finetune(model, loader, epochs={epochs}):
    """A real bug: the zero sits between backward and step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for epoch in range(epochs):
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.zero_grad()
            optimizer.step()
'''


def _model_classes(rng: random.Random) -> list[str]:
    lines = []
    for index in range(rng.randint(1, 3)):
        width = rng.choice((64, 128, 256))
        lines += ["", "", f"class Block{index}(nn.Module):", f'    """Residual block {index}."""', "",
                  "    def __init__(self, width=" + str(width) + "):", "        super().__init__()",
                  "        self.norm = nn.LayerNorm(width)", "        self.fc1 = nn.Linear(width, width * 4)",
                  "        self.fc2 = nn.Linear(width * 4, width)", "",
                  "    def forward(self, x):", "        def mlp(h):", "            return self.fc2(F.gelu(self.fc1(h)))",
                  "        return x + mlp(self.norm(x))"]
    return lines


def large_training_module(rng: random.Random, target: int | None = None) -> str:
    """A training script of 300-1,500 lines as real projects have them: configuration,
    data set and model classes with nested helpers, a training loop of one of several
    shapes (a trainer class whose methods split backward and step, a GAN, a step function
    handed to an engine, a plain loop with a real ZG002 bug), evaluation, and library code."""
    target = target or rng.randint(300, 1500)
    lines = ['"""Train a model (generated for zgcheck\'s benchmark)."""', "import argparse", "import logging",
             "import math", "import os", "", "import torch", "import torch.nn as nn", "import torch.nn.functional as F",
             "", "logger = logging.getLogger(__name__)", ""]
    lines += _model_classes(rng)
    values = {"epochs": rng.randint(2, 50), "accum": rng.choice((1, 2, 4, 8)), "opt": rng.choice(("SGD", "Adam", "AdamW")),
              "lr": rng.choice(("1e-3", "3e-4", "0.1")), "latent": rng.choice((16, 64, 128)), "clip": rng.choice((0, 1.0))}
    shapes = [TRAINER_CLASS, GAN_LOOP, STEP_FUNCTION_LOOP] + ([BUGGY_LOOP] if rng.random() < 0.2 else [])
    for shape in rng.sample(shapes, rng.randint(1, len(shapes))):
        lines += shape.format(**values).splitlines()
    lines += ["", "", "def evaluate(model, loader):", "    model.eval()", "    correct = total = 0",
              "    with torch.no_grad():", "        for x, y in loader:", "            pred = model(x).argmax(dim=1)",
              "            correct += (pred == y).sum().item()", "            total += y.numel()",
              "    return correct / max(1, total)"]
    while len(lines) < target - 10:
        if rng.random() < 0.4:
            lines += _class(rng, mention=False)
        else:
            lines += ["", ""] + _function(rng, _name(rng), "", method=False)
    lines += ["", "", "def main():", "    parser = argparse.ArgumentParser()", "    parser.add_argument('--epochs', type=int, default=3)",
              "    args = parser.parse_args()", "    logger.info('epochs: %d', args.epochs)", "", "",
              "if __name__ == '__main__':", "    main()", ""]
    return "\n".join(lines)
