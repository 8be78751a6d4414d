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
