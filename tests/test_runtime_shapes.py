"""zgcheck.runtime on training shapes: correct code stays silent, each bug shape is caught
with its code and lines."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="zgcheck.runtime needs torch: pip install torch==2.13.0")

from runtime_helpers import codes, line_of, run_code  # noqa: E402

MODEL = """
model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
batches = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(8)]
def loss_of(x, y):
    return nn.functional.mse_loss(model(x), y)
"""

CLEAN = {
    "zero_backward_step": """
        for x, y in batches * 3:
            optimizer.zero_grad()
            loss_of(x, y).backward()
            optimizer.step()
    """,
    "step_then_zero": """
        for x, y in batches * 3:
            loss_of(x, y).backward()
            optimizer.step()
            optimizer.zero_grad()
    """,
    "set_to_none_false": """
        for x, y in batches * 3:
            optimizer.zero_grad(set_to_none=False)
            loss_of(x, y).backward()
            optimizer.step()
    """,
    "foreach_zero_in_place": """
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
        for x, y in batches * 3:
            optimizer.zero_grad(set_to_none=False)
            loss_of(x, y).backward()
            optimizer.step()
    """,
    "model_zero_grad": """
        for x, y in batches * 3:
            model.zero_grad()
            loss_of(x, y).backward()
            optimizer.step()
    """,
    "old_style_data_zero": """
        for x, y in batches * 3:
            loss_of(x, y).backward()
            optimizer.step()
            for p in model.parameters():
                p.grad.data.zero_()
    """,
    "manual_grad_none_loop": """
        for x, y in batches * 3:
            for p in model.parameters():
                p.grad = None
            loss_of(x, y).backward()
            optimizer.step()
    """,
    "accumulation": """
        for i, (x, y) in enumerate(batches * 3):
            (loss_of(x, y) / 4).backward()
            if (i + 1) % 4 == 0:
                optimizer.step()
                optimizer.zero_grad()
    """,
    "full_batch_epoch": """
        for epoch in range(3):
            optimizer.zero_grad()
            for x, y in batches:
                loss_of(x, y).backward()
            optimizer.step()
    """,
    "clip_between_backward_and_step": """
        for x, y in batches * 3:
            optimizer.zero_grad()
            loss_of(x, y).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
            optimizer.step()
    """,
    "mask_some_parameters": """
        for x, y in batches * 3:
            optimizer.zero_grad()
            loss_of(x, y).backward()
            model[0].weight.grad = None
            model[2].bias.grad.zero_()
            optimizer.step()
    """,
    "frozen_and_unused_parameters": """
        extra = nn.Linear(4, 4)
        optimizer = torch.optim.SGD(list(model.parameters()) + list(extra.parameters()), lr=0.05)
        model[0].requires_grad_(False)
        for x, y in batches * 3:
            optimizer.zero_grad()
            loss_of(x, y).backward()
            optimizer.step()
    """,
    "two_pass_norm_probe": """
        for x, y in batches * 3:
            optimizer.zero_grad()
            loss_of(x, y).backward()
            norm = sum(p.grad.norm() for p in model.parameters())
            optimizer.zero_grad()
            (loss_of(x, y) / (1 + norm.detach())).backward()
            optimizer.step()
    """,
    "nonfinite_skip_once": """
        for i, (x, y) in enumerate(batches * 3):
            optimizer.zero_grad()
            loss = loss_of(x, y) * (float("inf") if i == 5 else 1.0)
            loss.backward()
            if not all(torch.isfinite(p.grad).all() for p in model.parameters()):
                optimizer.zero_grad()
                continue
            optimizer.step()
    """,
    "assigned_gradients": """
        for x, y in batches * 3:
            grads = torch.autograd.grad(loss_of(x, y), list(model.parameters()))
            for p, g in zip(model.parameters(), grads):
                p.grad = g
            optimizer.step()
    """,
    "dcgan_order": """
        G, D = nn.Linear(2, 2), nn.Linear(2, 1)
        opt_g = torch.optim.Adam(G.parameters(), lr=1e-3)
        opt_d = torch.optim.Adam(D.parameters(), lr=1e-3)
        for it in range(10):
            fake = G(torch.randn(8, 2))
            opt_d.zero_grad()
            (D(torch.randn(8, 2)).mean() - D(fake.detach()).mean()).backward()
            opt_d.step()
            opt_g.zero_grad()
            (-D(fake).mean()).backward()
            opt_g.step()
    """,
    "delayed_actor_update": """
        actor, critic = nn.Linear(3, 1), nn.Linear(4, 1)
        opt_a = torch.optim.Adam(actor.parameters(), lr=1e-3)
        opt_q = torch.optim.Adam(critic.parameters(), lr=1e-3)
        for step in range(12):
            s = torch.randn(8, 3)
            opt_q.zero_grad()
            critic(torch.cat([s, actor(s).detach()], 1)).pow(2).mean().backward()
            opt_q.step()
            if step % 3 == 0:
                opt_a.zero_grad()
                (-critic(torch.cat([s, actor(s)], 1)).mean()).backward()
                opt_a.step()
    """,
    "joint_loss_two_optimizers": """
        enc, dec = nn.Linear(4, 2), nn.Linear(2, 4)
        opt_e = torch.optim.SGD(enc.parameters(), lr=0.01)
        opt_d = torch.optim.Adam(dec.parameters(), lr=1e-3)
        for x, _ in batches * 2:
            opt_e.zero_grad()
            opt_d.zero_grad()
            nn.functional.mse_loss(dec(enc(x)), x).backward()
            opt_e.step()
            opt_d.step()
    """,
    "lbfgs_closure_zero_first": """
        optimizer = torch.optim.LBFGS(model.parameters(), max_iter=4)
        x, y = batches[0]
        def closure():
            optimizer.zero_grad()
            loss = loss_of(x, y)
            loss.backward()
            return loss
        for it in range(4):
            optimizer.step(closure)
    """,
    "checkpointed_model_reentrant": """
        from torch.utils.checkpoint import checkpoint
        for x, y in batches * 2:
            optimizer.zero_grad()
            x = x.requires_grad_()
            out = checkpoint(model, x, use_reentrant=True)
            nn.functional.mse_loss(out, y).backward()
            optimizer.step()
    """,
    "retain_graph_two_losses_one_step": """
        for x, y in batches * 2:
            optimizer.zero_grad()
            out = model(x)
            nn.functional.mse_loss(out, y).backward(retain_graph=True)
            out.abs().mean().backward()
            optimizer.step()
    """,
    "functional_backward_call": """
        for x, y in batches * 2:
            optimizer.zero_grad()
            torch.autograd.backward(loss_of(x, y))
            optimizer.step()
    """,
}


@pytest.mark.parametrize("name", sorted(CLEAN))
def test_correct_code_is_silent(tmp_path, name):
    findings = run_code(tmp_path, MODEL, CLEAN[name])
    assert findings == [], [f.message for f in findings]


BUGS = {
    "zero_between": ("ZG002", "optimizer.step()", """
        for x, y in batches * 2:
            loss_of(x, y).backward()
            optimizer.zero_grad()
            optimizer.step()
    """),
    "old_style_data_zero_between": ("ZG002", "optimizer.step()", """
        for x, y in batches * 2:
            loss_of(x, y).backward()
            for p in model.parameters():
                p.grad.data.zero_()
            optimizer.step()
    """),
    "never_zeroed": ("ZG001", "optimizer.step()", """
        for x, y in batches * 2:
            loss_of(x, y).backward()
            optimizer.step()
    """),
    "zero_before_loop": ("ZG003", "optimizer.step()", """
        optimizer.zero_grad()
        for x, y in batches * 2:
            loss_of(x, y).backward()
            optimizer.step()
    """),
    "two_steps_no_backward_between": ("ZG001", "optimizer.step()  # second", """
        for x, y in batches:
            optimizer.zero_grad()
            loss_of(x, y).backward()
            optimizer.step()
            optimizer.step()  # second
    """),
    "accumulation_defeated": ("ZG004", "optimizer.step()", """
        for i, (x, y) in enumerate(batches * 2):
            optimizer.zero_grad()
            loss_of(x, y).backward()
            if (i + 1) % 4 == 0:
                optimizer.step()
    """),
    "zero_inside_micro_batch_loop": ("ZG004", "optimizer.step()", """
        for x, y in batches:
            for micro_x, micro_y in zip(x.chunk(4), y.chunk(4)):
                optimizer.zero_grad()
                (loss_of(micro_x, micro_y) / 4).backward()
            optimizer.step()
    """),
    "closure_without_zero": ("ZG005", "optimizer.step(closure)", """
        optimizer = torch.optim.LBFGS(model.parameters(), max_iter=4)
        x, y = batches[0]
        def closure():
            loss = loss_of(x, y)
            loss.backward()
            return loss
        for it in range(3):
            optimizer.step(closure)
    """),
    "manual_update_never_reset": ("ZG006", "loss.backward()", """
        w = torch.zeros(4, 1, requires_grad=True)
        for x, y in batches * 2:
            loss = ((x @ w - y) ** 2).mean()
            loss.backward()
            with torch.no_grad():
                w -= 0.1 * w.grad
    """),
    "manual_update_through_data": ("ZG006", "loss.backward()", """
        for x, y in batches * 2:
            loss = loss_of(x, y)
            loss.backward()
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-0.1)
    """),
    "gan_both_zeros_first": ("ZG007", "opt_d.step()", """
        G, D = nn.Linear(2, 2), nn.Linear(2, 1)
        opt_g = torch.optim.Adam(G.parameters(), lr=1e-3)
        opt_d = torch.optim.Adam(D.parameters(), lr=1e-3)
        for it in range(6):
            opt_g.zero_grad()
            opt_d.zero_grad()
            fake = G(torch.randn(8, 2))
            (-D(fake).mean()).backward()
            opt_g.step()
            (D(torch.randn(8, 2)).mean() - D(fake.detach()).mean()).backward()
            opt_d.step()
    """),
    "critic_zeroed_right_after_own_step": ("ZG007", "opt_q.step()", """
        actor, critic = nn.Linear(3, 1), nn.Linear(4, 1)
        opt_a = torch.optim.Adam(actor.parameters(), lr=1e-3)
        opt_q = torch.optim.Adam(critic.parameters(), lr=1e-3)
        for step in range(6):
            s = torch.randn(8, 3)
            (-critic(torch.cat([s, actor(s)], 1)).mean()).backward()
            opt_a.step()
            opt_a.zero_grad()
            critic(torch.cat([s, actor(s).detach()], 1)).pow(2).mean().backward()
            opt_q.step()
            opt_q.zero_grad()
    """),
}


@pytest.mark.parametrize("name", sorted(BUGS))
def test_bug_is_caught_at_its_line(tmp_path, name):
    code, at, body = BUGS[name]
    findings = run_code(tmp_path, MODEL, body)
    assert codes(findings) == {code}, [f.message for f in findings]
    assert findings[0].row == line_of(tmp_path, at)
    assert findings[0].count >= 1 and findings[0].related


def test_wiped_names_backward_and_zero_lines(tmp_path):
    findings = run_code(tmp_path, MODEL, BUGS["zero_between"][2])
    labels = {r.label: r.site.line for r in findings[0].related}
    assert labels == {"backward": line_of(tmp_path, "loss_of(x, y).backward()"),
                      "zero": line_of(tmp_path, "optimizer.zero_grad()")}
    assert "optimizer.zero_grad() (line" in findings[0].message


def test_leak_names_the_other_step(tmp_path):
    findings = run_code(tmp_path, MODEL, BUGS["gan_both_zeros_first"][2])
    labels = {r.label: r.site.line for r in findings[0].related}
    assert labels["other step"] == line_of(tmp_path, "opt_g.step()")
    assert labels["backward"] == line_of(tmp_path, "(-D(fake).mean()).backward()")


def test_exact_mode_sizes_the_problem(tmp_path):
    findings = run_code(tmp_path, MODEL, BUGS["never_zeroed"][2], exact=True)
    assert codes(findings) == {"ZG001"}
    assert 0.0 < findings[0].share <= 1.0
    assert "stale part:" in findings[0].message


def test_exact_mode_agrees_on_correct_code(tmp_path):
    assert run_code(tmp_path, MODEL, CLEAN["accumulation"], exact=True) == []


OPTIMIZERS = {
    "sparse_adam": "emb = nn.Embedding(50, 4, sparse=True)\nopt = torch.optim.SparseAdam(emb.parameters())\n"
                   "def loss_fn():\n    return emb(torch.randint(0, 50, (8,))).pow(2).mean()\n",
    "fused_adam": "lin = nn.Linear(4, 1)\nopt = torch.optim.Adam(lin.parameters(), fused=True)\n"
                  "def loss_fn():\n    return lin(torch.randn(8, 4)).pow(2).mean()\n",
    "sgd_momentum_bf16": "lin = nn.Linear(4, 1).to(torch.bfloat16)\nopt = torch.optim.SGD(lin.parameters(), lr=0.1, momentum=0.9)\n"
                         "def loss_fn():\n    return lin(torch.randn(8, 4, dtype=torch.bfloat16)).float().pow(2).mean()\n",
    "rmsprop_two_groups": "lin = nn.Linear(4, 1)\nopt = torch.optim.RMSprop([{'params': [lin.weight]}, {'params': [lin.bias], 'lr': 1e-3}])\n"
                          "def loss_fn():\n    return lin(torch.randn(8, 4)).pow(2).mean()\n",
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("bug", [False, True], ids=["correct", "zero_between"])
def test_optimizer_kinds(tmp_path, name, bug):
    loop = "for i in range(4):\n    opt.zero_grad()\n    loss_fn().backward()\n    opt.step()\n"
    if bug:
        loop = "for i in range(4):\n    loss_fn().backward()\n    opt.zero_grad()\n    opt.step()\n"
    findings = run_code(tmp_path, OPTIMIZERS[name], loop)
    assert codes(findings) == ({"ZG002"} if bug else set()), [f.message for f in findings]
