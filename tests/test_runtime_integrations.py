"""zgcheck.runtime with the machinery real training uses: an enabled GradScaler that skips
steps, torch.compile, DistributedDataParallel and FSDP (one CPU process, gloo)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="zgcheck.runtime needs torch: pip install torch==2.13.0")

from runtime_helpers import codes, run_code, run_code_isolated  # noqa: E402

LOOP = """
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
{wrap}
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
for i in range(6):
    loss = model(torch.randn(16, 4)).pow(2).mean()
    loss.backward()
    {bug}
    optimizer.step()
    optimizer.zero_grad()
{teardown}
"""
BUG = "optimizer.zero_grad()"


def test_grad_scaler_skipping_steps_on_inf_is_silent(tmp_path):
    findings = run_code(tmp_path, """
        model = nn.Linear(4, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
        for i in range(10):
            optimizer.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model(torch.randn(8, 4)).pow(2).mean()
            if i in (3, 4, 7):
                loss = loss * float("inf")
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        assert scaler.get_scale() < 2.0 ** 16  # steps were skipped
    """)
    assert findings == []


@pytest.mark.parametrize("bug", ["", BUG], ids=["correct", "zero_between"])
def test_compiled_model(tmp_path, bug):
    """backend="aot_eager": TorchDynamo capture and AOTAutograd, the parts that decide how
    gradients reach the parameters; inductor would only swap the kernels, and compiling
    them with a C++ compiler on a 2-core CPU takes minutes."""
    dynamo = pytest.importorskip("torch._dynamo", reason="torch.compile is not available here")
    if not dynamo.is_dynamo_supported():
        pytest.skip("torch.compile does not support this Python")
    dynamo.reset()
    findings = run_code(tmp_path, LOOP.format(wrap='model = torch.compile(model, backend="aot_eager")',
                                              bug=bug, teardown=""))
    assert codes(findings) == ({"ZG002"} if bug else set())


DIST = """
import tempfile
import torch.distributed as dist
dist.init_process_group("gloo", init_method="file://" + tempfile.mktemp(), rank=0, world_size=1)
"""


# The wrapped model and its optimizer go before the process group: the group is then never
# destroyed from inside the DDP Reducer's destructor.
TEARDOWN = "del model, optimizer\ndist.destroy_process_group()"


def _distributed():
    dist = pytest.importorskip("torch.distributed", reason="torch.distributed is not available")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")


@pytest.mark.parametrize("bug", ["", BUG], ids=["correct", "zero_between"])
def test_distributed_data_parallel(tmp_path, bug):
    _distributed()
    found = run_code_isolated(tmp_path, DIST, LOOP.format(wrap="model = nn.parallel.DistributedDataParallel(model)",
                                                          bug=bug, teardown=TEARDOWN))
    assert found == ({"ZG002"} if bug else set())


def test_distributed_data_parallel_no_sync_accumulation(tmp_path):
    _distributed()
    found = run_code_isolated(tmp_path, DIST, """
        model = nn.parallel.DistributedDataParallel(nn.Linear(4, 1))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        for i in range(8):
            if i % 2 == 0:
                with model.no_sync():
                    model(torch.randn(16, 4)).pow(2).mean().backward()
                continue
            model(torch.randn(16, 4)).pow(2).mean().backward()
            optimizer.step()
            optimizer.zero_grad()
        del model, optimizer
        dist.destroy_process_group()
    """)
    assert found == set()


@pytest.mark.parametrize("bug", ["", BUG], ids=["correct", "zero_between"])
def test_fully_sharded_data_parallel(tmp_path, bug):
    """FSDP (fully_shard) writes reduced gradients into the sharded parameters itself: wipes
    are seen, gradients left stale across steps are not (README, "Runtime checks")."""
    _distributed()
    pytest.importorskip("torch.distributed.fsdp", reason="FSDP is not available")
    found = run_code_isolated(tmp_path, DIST, "from torch.distributed.fsdp import fully_shard\n",
                              LOOP.format(wrap="fully_shard(model)", bug=bug, teardown=TEARDOWN))
    assert found == ({"ZG002"} if bug else set())
