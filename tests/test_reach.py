"""Reach: which optimizers a loss writes into, and which statements freeze modules."""
from __future__ import annotations

import textwrap

import pytest

from zgcheck.loops import extract_regions
from zgcheck.parsing import parse
from zgcheck.reach import ReachFinder
from zgcheck.recognize import collect_facts

HEAD = """
import torch
G = torch.nn.Linear(2, 2)
D = torch.nn.Linear(2, 1)
opt_g = torch.optim.Adam(G.parameters())
opt_d = torch.optim.Adam(D.parameters())
"""


def reached(body: str) -> list[frozenset[str]]:
    """What each backward of ``body`` (after HEAD) surely reaches, in source order."""
    text = HEAD + textwrap.dedent(body)
    parsed = parse("t.py", text)
    facts = collect_facts(parsed)
    finder = ReachFinder(parsed, facts)
    events = {e.id: e for r in extract_regions(parsed, facts) for e in r.events.values() if e.kind == "backward"}
    ordered = sorted(events.values(), key=lambda e: (e.line, e.column))
    return [finder.optimizers(e, ["opt_g", "opt_d"]) for e in ordered]


BOTH, ONLY_G, ONLY_D, NONE = frozenset({"opt_g", "opt_d"}), frozenset({"opt_g"}), frozenset({"opt_d"}), frozenset()


@pytest.mark.parametrize("body, expected", [
    pytest.param("fake = G(z)\nloss = D(fake).mean()\nloss.backward()\n", [BOTH], id="through-local-names"),
    pytest.param("fake = G(z)\nloss = D(fake.detach()).mean()\nloss.backward()\n", [ONLY_D], id="detach-keeps-the-module-called-on-it"),
    pytest.param("with torch.no_grad():\n    fake = G(z)\n(D(fake) - 1).pow(2).mean().backward()\n", [ONLY_D], id="no-grad-value"),
    pytest.param("x = G(z)\nx = torch.randn(2, 2)\nD(x).sum().backward()\n", [ONLY_D], id="nearest-assignment-wins"),
    pytest.param("x = G(z)\nif c:\n    x = torch.randn(2, 2)\nD(x).sum().backward()\n", [BOTH], id="conditional-assignment-keeps-earlier"),
    pytest.param("losses = []\nlosses.append(D(G(z)).mean())\nsum(losses).backward()\n", [BOTH], id="appended-to-a-list"),
    pytest.param("scaler.scale(D(G(z)).mean()).backward()\n", [BOTH], id="scaler"),
    pytest.param("accelerator.backward(G(z).sum())\n", [ONLY_G], id="loss-as-argument"),
    pytest.param(
        "def g_loss(gen, disc, noise):\n    return -disc(gen(noise)).mean()\n\n"
        "for z in data:\n    g_loss(G, D, z).backward()\n", [BOTH], id="helper-with-module-arguments"),
    pytest.param("for z in data:\n    loss = criterion(D, z)\n    loss.backward()\n", [NONE], id="module-handed-to-unknown-call"),
])
def test_reach(body, expected):
    assert reached(body) == expected


def test_methods_attributes_and_loss_modules_of_self():
    body = '''
    class Model:
        def __init__(self):
            self.netG = torch.nn.Linear(2, 2)
            self.netD = torch.nn.Linear(2, 1)
            self.opt_g = torch.optim.Adam(self.netG.parameters())
            self.opt_d = torch.optim.Adam(self.netD.parameters())
            self.criterion = torch.nn.MSELoss()

        def forward(self):
            self.fake = self.netG(self.real)

        def loss_d(self):
            return self.criterion(self.netD(self.fake.detach()), self.ones)

        def step(self):
            self.forward()
            self.criterion(self.netD(self.fake), self.ones).backward()
            self.loss_d().backward()
    '''
    parsed = parse("t.py", textwrap.dedent(body))
    facts = collect_facts(parsed)
    finder = ReachFinder(parsed, facts)
    events = sorted((e for r in extract_regions(parsed, facts) for e in r.events.values() if e.kind == "backward"),
                    key=lambda e: e.line)
    keys = ["self.opt_g", "self.opt_d"]
    assert [finder.optimizers(e, keys) for e in events] == [frozenset(keys), frozenset({"self.opt_d"})]


def test_lightning_optimizers_map_to_configure_optimizers():
    body = '''
    import lightning as L
    class GAN(L.LightningModule):
        def training_step(self, batch, batch_idx):
            opt_g, opt_d = self.optimizers()
            self.manual_backward(self.d(self.g(batch)).mean())
            opt_g.step()

        def configure_optimizers(self):
            return torch.optim.Adam(self.g.parameters()), torch.optim.Adam(self.d.parameters())
    '''
    parsed = parse("t.py", textwrap.dedent(body))
    facts = collect_facts(parsed)
    finder = ReachFinder(parsed, facts)
    assert finder.owners("opt_g") == frozenset({"self.g"}) and finder.owners("opt_d") == frozenset({"self.d"})


@pytest.mark.parametrize("statement, kind, models", [
    pytest.param("set_requires_grad([netD_A, netD_B], False)", "freeze", ("netD_A", "netD_B"), id="helper-list"),
    pytest.param("self.set_requires_grad(self.netD, True)", "unfreeze", ("self.netD",), id="helper-method"),
    pytest.param("toggle_grad(D, False)", "freeze", ("D",), id="toggle-grad"),
    pytest.param("D.requires_grad_(False)", "freeze", ("D",), id="requires-grad-underscore"),
    pytest.param("D.requires_grad_()", "unfreeze", ("D",), id="requires-grad-underscore-default"),
    pytest.param("for p in D.parameters():\n    p.requires_grad = False", "freeze", ("D",), id="parameter-loop"),
    pytest.param("requires_grad(D, flag)", "freeze", ("D",), id="unknown-flag-may-freeze"),
])
def test_freeze_events(statement, kind, models):
    text = HEAD + "for x in data:\n" + textwrap.indent(statement, "    ") + "\n    D(x).sum().backward()\n    opt_d.step()\n"
    parsed = parse("t.py", text)
    facts = collect_facts(parsed)
    frozen = [e for r in extract_regions(parsed, facts) for e in r.events.values() if e.kind in ("freeze", "unfreeze")]
    assert [(e.kind, e.models) for e in frozen] == [(kind, models)]
    assert frozen[0].unknown == (statement == "requires_grad(D, flag)")
