"""A hypothesis strategy for small training scripts in the shapes that matter.

Each program has one or two models with their optimizers, a loop (optionally nested in
an epoch loop, optionally a `while`), and a body of backward / step / zero statements in
any order, some under an accumulation-like `if` (`%` in the condition). The zero comes
in every form: `opt.zero_grad()`, `model.zero_grad()`, `p.grad = None` over parameters.
Programs are tiny and run under torch in milliseconds.
"""
from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

# An accumulation-looking condition whose truth sequence over 14 iterations holds every
# pair (T T, T F, F T, F F), so a run explores the paths a static analysis must assume.
ACCUM = "(i % 7) % 3 == 0"


@dataclass(frozen=True)
class Stmt:
    kind: str  # "B" backward, "S" step, "Z" zero
    opt: int = 0
    form: int = 0  # zero form, or step form (0 plain, 1 through a scaler)
    guarded: bool = False


@dataclass(frozen=True)
class Program:
    n_opts: int
    body: tuple[Stmt, ...]
    nested: bool
    while_loop: bool
    zero_before: bool
    helper: bool

    def decidable(self) -> bool:
        """Programs whose runtime behaviour zgcheck's static model can decide exactly.

        Left out, by design of the analysis (ARCHITECTURE.md, "Precision rules"): a zero
        under a condition its optimizer's step does not share (assumed aligned), and a zero
        between two backward passes (two-pass schemes stay silent). Left out because the
        oracle answers another question (leaks): two optimizers stepping at different rates."""
        for k in range(self.n_opts):
            zeros = [s for s in self.body if s.kind == "Z" and s.opt == k]
            steps = [s for s in self.body if s.kind == "S" and s.opt == k]
            if any(z.guarded for z in zeros) and not (steps and all(s.guarded for s in steps)):
                return False
            if any(s.guarded for s in steps) and any(not z.guarded for z in zeros) and self.nested:
                return False
        # The joint loss reaches both models: when one optimizer steps less often than the
        # other, the oracle's leak definition (a backward belongs to the first burst of steps
        # after it) calls the slower one's accumulated gradient a leak, a ZG007 question that
        # the ordering rules compared here do not answer.
        rates = {s.guarded for s in self.body if s.kind == "S"}
        if self.n_opts > 1 and len(rates) > 1:
            return False
        kinds = [s.kind for s in self.body]
        if kinds.count("B") > 1:
            return False
        if not any(s.kind == "B" for s in self.body) or not any(s.kind == "S" for s in self.body):
            return False
        return True

    def source(self) -> str:
        lines = [
            "import torch",
            "torch.manual_seed(0)",
            "scaler = torch.amp.GradScaler('cpu', enabled=False)",
        ]
        for k in range(self.n_opts):
            lines.append(f"m{k} = torch.nn.Linear(3, 1)")
            lines.append(f"opt{k} = torch.optim.SGD(m{k}.parameters(), lr=0.01)")
        lines.append("x = torch.randn(8, 3)")
        if self.zero_before:
            lines.append("opt0.zero_grad()")
        if self.helper:
            lines += ["", "", "def train_step(i):"]
            lines += ["    " + l for l in self.body_lines()]
            lines += ["", ""]
        loop_lines = ["train_step(i)"] if self.helper else self.body_lines()
        if self.while_loop:
            loop = ["i = 0", "while i < 14:"] + ["    " + l for l in loop_lines] + ["    i += 1"]
        else:
            loop = ["for i in range(14):"] + ["    " + l for l in loop_lines]
        if self.nested:
            loop = ["for epoch in range(2):"] + ["    " + l for l in loop]
        return "\n".join(lines + loop) + "\n"

    def body_lines(self) -> list[str]:
        out: list[str] = []
        for stmt in self.body:
            code = self.code(stmt)
            if stmt.guarded:
                out += [f"if {ACCUM}:"] + ["    " + c for c in code]
            else:
                out += code
        return out

    def code(self, stmt: Stmt) -> list[str]:
        k = stmt.opt
        if stmt.kind == "B":
            losses = " + ".join(f"m{j}(x).pow(2).mean()" for j in range(self.n_opts))
            return [f"loss = {losses}", "scaler.scale(loss).backward()" if stmt.form else "loss.backward()"]
        if stmt.kind == "S":
            return [f"scaler.step(opt{k})"] if stmt.form else [f"opt{k}.step()"]
        if stmt.form == 1:
            return [f"m{k}.zero_grad()"]
        if stmt.form == 2:
            return [f"for p in m{k}.parameters():", "    p.grad = None"]
        return [f"opt{k}.zero_grad()"]


@st.composite
def programs(draw) -> Program:
    n_opts = draw(st.integers(1, 2))
    stmt = st.builds(
        Stmt,
        kind=st.sampled_from("BSZ"),
        opt=st.integers(0, n_opts - 1),
        form=st.integers(0, 2),
        guarded=st.booleans(),
    ).map(lambda s: Stmt(s.kind, s.opt, min(s.form, 1) if s.kind != "Z" else s.form, s.guarded and s.kind != "B"))
    body = tuple(draw(st.lists(stmt, min_size=2, max_size=6)))
    return Program(n_opts, body, draw(st.booleans()), draw(st.booleans()), draw(st.booleans()), draw(st.booleans()))
