"""Small training scripts shared by the tests."""

# The seed tutorial's bug in eight lines: zero_grad() between backward() and step() (ZG002
# at line 7, column 5).
BUG = """import torch
model = torch.nn.Linear(1, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for i in range(3):
    loss = model(torch.ones(1)).sum()
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
"""
# The same loop with the reset before the backward: correct.
CLEAN = BUG.replace("    loss.backward()\n    optimizer.zero_grad()\n", "    optimizer.zero_grad()\n    loss.backward()\n")
