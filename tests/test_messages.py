"""Messages name the optimizer and the events with their lines, as the guide asks."""
from __future__ import annotations

from pathlib import Path

from zgcheck import check_source

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def only(text: str):
    result = check_source(text, "t.py")
    assert len(result.diagnostics) == 1, result.diagnostics
    return result.diagnostics[0]


def test_tutorial_seed_reports_one_zg002_naming_backward_and_step():
    path = FIXTURES / "zg002" / "tutorial_seed.py"
    text = path.read_text()
    diag = only(text)
    lines = text.splitlines()
    zero_line = next(i for i, l in enumerate(lines, 1) if "zero_grad()" in l)
    backward_line = next(i for i, l in enumerate(lines, 1) if ".backward()" in l)
    step_line = next(i for i, l in enumerate(lines, 1) if ".step()" in l)
    assert diag.code == "ZG002" and diag.location.row == zero_line
    assert f"(line {backward_line})" in diag.message and f"(line {step_line})" in diag.message


def test_zero_grad_without_call_is_named():
    text = """
import torch
model = torch.nn.Linear(1, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for x in range(3):
    optimizer.zero_grad
    model(torch.ones(1)).sum().backward()
    optimizer.step()
"""
    diag = only(text)
    assert diag.code == "ZG001" and diag.location.row == 6
    assert "referenced but never called" in diag.message


def test_zg001_message_names_step_and_backward():
    text = """
import torch
model = torch.nn.Linear(1, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for x in range(3):
    model(torch.ones(1)).sum().backward()
    opt.step()
"""
    diag = only(text)
    assert diag.code == "ZG001" and diag.location.row == 7
    assert "opt.step() (line 7)" in diag.message and "(line 6)" in diag.message and diag.optimizer == "opt"


def test_rl_env_step_and_scheduler_are_not_optimizers():
    text = """
import torch
policy = torch.nn.Linear(4, 2)
optimizer = torch.optim.Adam(policy.parameters())
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 10)
for episode in range(10):
    obs = env.reset()
    action = policy(obs).argmax()
    obs, reward, done, info = env.step(action)
    loss = -reward * policy(obs).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()
    ema.step()
"""
    assert check_source(text, "t.py").diagnostics == ()


def test_files_without_training_code_are_not_parsed(monkeypatch):
    import zgcheck.runner as runner

    def boom(*args, **kwargs):
        raise AssertionError("parsed a file that cannot hold a training loop")

    monkeypatch.setattr(runner, "analyse_text", boom)
    assert check_source("def f(x):\n    return x + 1\n", "t.py").diagnostics == ()


def test_message_names_the_optimizer_as_the_loop_does():
    path = Path(__file__).resolve().parent.parent / "fixtures" / "zg001" / "trainer_optimizer_from_constructor.py"
    (diag,) = check_source(path.read_text(), str(path)).diagnostics
    assert "nothing resets self.optimizer's gradients" in diag.message
    assert "call self.optimizer.zero_grad()" in diag.message
    assert "optim'" not in diag.message


def test_message_names_the_condition_a_zero_runs_under():
    text = (
        "import torch\n"
        "model = torch.nn.Linear(2, 1)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for batch_idx, x in enumerate(torch.randn(8, 4, 2)):\n"
        "    if batch_idx % 8 == 0:\n"
        "        opt.zero_grad()\n"
        "    model(x).sum().backward()\n"
        "    opt.step()\n"
    )
    (diag,) = check_source(text, "t.py").diagnostics
    assert diag.code == "ZG001" and diag.location.row == 8
    assert "opt.zero_grad() (line 6) runs only when `batch_idx % 8 == 0`" in diag.message
    # As written (spaces kept), not as the analysis keys it (`optimizeranddo_zero_grad`).
    both = text.replace("if batch_idx % 8 == 0:", "if opt and (batch_idx % 8 == 0):")
    assert "runs only when `opt and (batch_idx % 8 == 0)`" in check_source(both, "t.py").diagnostics[0].message


def test_a_finding_that_relies_on_a_call_known_by_its_name_only_has_no_safe_fix():
    text = (
        "import torch\n"
        "from elsewhere import clear_grads\n"
        "model = torch.nn.Linear(2, 1)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for x in torch.randn(8, 4, 2):\n"
        "    model(x).sum().backward()\n"
        "    clear_grads(opt)\n"
        "    opt.step()\n"
    )
    (diag,) = check_source(text, "t.py").diagnostics
    assert (diag.code, diag.location.row) == ("ZG002", 7)
    assert diag.fix is None  # the zero is a call we cannot see into: never moved


def test_zg007_names_the_backward_the_other_step_and_the_early_zero():
    diag = only((FIXTURES / "zg007" / "both_zeros_at_top.py").read_text())
    assert diag.code == "ZG007" and diag.optimizer == "opt_d" and diag.location.row == 27
    for cited in ("opt_d.step() (line 27)", "g_loss.backward() (line 22)", "opt_g.step() (line 23)",
                  "opt_d.zero_grad() (line 18)"):
        assert cited in diag.message
    assert [(r.label, r.line) for r in diag.related] == [("zero", 18), ("backward", 22), ("step", 23), ("step", 27)]
    # Both zeroed together at the top: the same shape as a joint objective, so unsafe.
    assert diag.fix is not None and diag.fix.applicability == "unsafe"
    assert "meant to train both" in diag.message


def test_zg007_after_a_joint_zero_is_reported_with_an_unsafe_fix_and_a_hint():
    """An encoder and a generator zeroed together, one loss for both, the generator one
    more term (BicycleGAN): maybe a joint objective; the fix would drop it."""
    diag = only((FIXTURES / "zg007" / "joint_objective_then_extra_term.py").read_text())
    assert diag.code == "ZG007" and diag.optimizer == "opt_g"
    assert "if joint.backward(retain_graph=True) is meant to train both, mark this step `# noqa: ZG007`" in diag.message
    assert diag.fix is not None and diag.fix.applicability == "unsafe"


def test_zg007_zero_of_its_own_before_the_leak_keeps_a_safe_fix():
    diag = only((FIXTURES / "zg007" / "vae_gan_disc_zeroed_at_top.py").read_text())
    assert diag.code == "ZG007" and "meant to train both" not in diag.message
    assert diag.fix is not None and diag.fix.applicability == "safe"


def test_zg007_fix_across_blocks_is_unsafe():
    # The other optimizer's step sits in a branch: the inserted zero is a judgement call.
    diags = check_source((FIXTURES / "zg007" / "amp_two_scalers_mode_switch.py").read_text(), "t.py").diagnostics
    assert [d.code for d in diags] == ["ZG007", "ZG007"]
    assert all(d.fix is not None and d.fix.applicability == "unsafe" for d in diags)


UNWRAPPED_GAN = """\
import torch
from torch import nn
from accelerate import Accelerator

vae = nn.Linear(8, 8)
disc = nn.Linear(8, 1)
accelerator = Accelerator()
opt_vae = torch.optim.AdamW(vae.parameters())
opt_disc = torch.optim.AdamW(disc.parameters())
vae, disc, opt_vae, opt_disc = accelerator.prepare(vae, disc, opt_vae, opt_disc)
for step, x in enumerate(loader):
    recon = accelerator.unwrap_model(vae)(x)
    if step % 2 == 0:
        loss = (recon - x).abs().mean() - disc(recon).mean()
        accelerator.backward(loss)
        opt_vae.step()
        opt_vae.zero_grad()
    else:
        d_loss = torch.relu(1 - disc(x)).mean() + torch.relu(1 + disc(recon.detach())).mean()
        accelerator.backward(d_loss)
        opt_disc.step()
        opt_disc.zero_grad()
"""


def test_zg007_sees_through_accelerate_unwrap_model():
    """`accelerator.unwrap_model(vae)` runs vae's layers: the loss is followed into it."""
    diag = only(UNWRAPPED_GAN)
    assert diag.code == "ZG007" and diag.optimizer == "opt_disc" and diag.location.row == 21
    decoded = UNWRAPPED_GAN.replace("accelerator.unwrap_model(vae)(x)", "accelerator.unwrap_model(vae).decode(x)")
    assert only(decoded).location.row == 21


def test_zg001_under_a_mode_switch_says_when_it_is_false():
    """A setting the loop never changes (a parameter of the function) holds for the whole
    run: not "on the other iterations" but "when it is false"."""
    text = (
        "def run(model, data, criterion, optimizer, do_zero_grad=True):\n"
        "    for x, y in data:\n"
        "        if optimizer and do_zero_grad:\n"
        "            optimizer.zero_grad()\n"
        "        criterion(model(x), y).backward()\n"
        "        optimizer.step()\n"
    )
    diag = only(text)
    assert diag.code == "ZG001"
    assert "runs only when `optimizer and do_zero_grad`" in diag.message and "when it is false it uses" in diag.message


def test_a_second_step_in_one_iteration_names_the_first_not_a_guarded_zero():
    # magvit2-pytorch: the conditional zero of other optimizers does not explain a step
    # that follows another step of the same iteration.
    path = FIXTURES / "zg001" / "double_step_same_iteration.py"
    diag = only(path.read_text())
    assert diag.code == "ZG001" and diag.location.row == 23
    assert "self.discr_optimizer.step() (line 22) already consumed" in diag.message
    assert "runs only when" not in diag.message
