"""Runtime truth: every fix pair runs under torch with the gradient oracle.

The buggy script must show the bug its header predicts (`# oracle: <kind>`), the fixed
script must show none and must learn (its loss goes down)."""
from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed: pip install torch==2.13.0")

from oracle import run_script  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FIX = FIXTURES / "fix"
PAIRS = sorted(p for p in FIX.glob("*.py") if not p.name.endswith(".fixed.py"))
LEAKS = sorted((FIXTURES / "zg007").glob("*.py"))
# Correct code with two or more optimizers whose losses cross networks (GANs, actor-critic,
# VAE-GAN): the oracle must see no leak, wipe or stale gradient in any of them.
CROSSING = [FIXTURES / "clean" / f"{name}.py" for name in (
    "dcgan_model_zero_grad", "td3_delayed_actor_update", "wgan_n_critic_generator_update",
    "multiple_optimizers", "amp_two_scalers_mode_switch", "gan_d_frozen_set_requires_grad",
    "gan_d_frozen_requires_grad_", "gan_d_frozen_param_loop", "actor_critic_critic_first_zero_before_backward",
    "encoder_decoder_joint_loss_zero_after_step", "gan_d_first_detached_fake", "gan_fake_under_no_grad",
    "wgan_gp_critic_inner_loop", "vae_gan_discriminator_zeroed_first", "lightning_toggle_optimizer_zero_after_step",
    "lightning_autoencoder_gan_loss_helpers", "ppo_separate_actor_critic_losses", "infogan_info_optimizer_zeroed_before_backward",
)]


def predicted(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# oracle: "), f"{path.name} must start with '# oracle: <kind>'"
    return first.split(":", 1)[1].strip()


@pytest.mark.parametrize("path", PAIRS, ids=[p.name for p in PAIRS])
def test_buggy_shows_bug_and_fixed_is_clean(path):
    kind = predicted(path)
    buggy = run_script(str(path))
    assert buggy.events[kind] > 0, f"expected {kind}, oracle saw {dict(buggy.events)}"
    fixed = run_script(str(path.with_name(path.stem + ".fixed.py")))
    assert fixed.bugs == {}, f"fixed script still shows {fixed.bugs}"
    assert fixed.learned(), f"fixed script did not learn: {fixed.losses[:3]} ... {fixed.losses[-3:]}"


def test_oracle_accepts_correct_shapes(tmp_path):
    script = tmp_path / "accumulate.py"
    script.write_text(
        "import torch\n"
        "torch.manual_seed(0)\n"
        "m = torch.nn.Linear(2, 1)\n"
        "opt = torch.optim.SGD(m.parameters(), lr=0.1)\n"
        "for i in range(12):\n"
        "    (m(torch.randn(4, 2)).pow(2).mean() / 3).backward()\n"
        "    if (i + 1) % 3 == 0:\n"
        "        opt.step()\n"
        "        opt.zero_grad()\n"
    )
    assert run_script(str(script)).bugs == {}


@pytest.mark.parametrize("path", LEAKS, ids=[p.name for p in LEAKS])
def test_every_zg007_fixture_leaks_at_runtime(path):
    report = run_script(str(path))
    assert report.steps and report.events["leak"] > 0, f"no leak at runtime: {dict(report.events)}"


@pytest.mark.parametrize("path", CROSSING, ids=[p.name for p in CROSSING])
def test_correct_multi_optimizer_code_is_clean_at_runtime(path):
    report = run_script(str(path))
    assert report.steps and report.bugs == {}, f"oracle saw {report.bugs}"


def test_oracle_leak_definition(tmp_path):
    """A backward belongs to the first burst of steps after it: a joint loss whose two
    optimizers step back to back is no leak; the same loss with a backward between the two
    steps leaks into the second one."""
    head = (
        "import torch\n"
        "torch.manual_seed(0)\n"
        "a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)\n"
        "opt_a = torch.optim.SGD(a.parameters(), lr=0.1)\n"
        "opt_b = torch.optim.SGD(b.parameters(), lr=0.1)\n"
        "for i in range(5):\n"
        "    opt_a.zero_grad()\n"
        "    opt_b.zero_grad()\n"
        "    b(a(torch.randn(4, 2))).pow(2).mean().backward()\n"
        "    opt_a.step()\n"
    )
    joint = tmp_path / "joint.py"
    joint.write_text(head + "    opt_b.step()\n")
    assert run_script(str(joint)).bugs == {}
    leaking = tmp_path / "leaking.py"
    leaking.write_text(head + "    b(torch.randn(4, 2)).pow(2).mean().backward()\n    opt_b.step()\n")
    assert run_script(str(leaking)).bugs == {"leak": 2 * 5}
