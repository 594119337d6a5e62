"""Baseline ConvNet: causal, streams exactly, trains down on a toy regression."""

import pytest

torch = pytest.importorskip("torch")

from edgesense.nn import create_model  # noqa: E402
from edgesense.nn.convnet import ConvNet  # noqa: E402


def test_convnet_receptive_field_and_streaming():
    torch.manual_seed(0)
    model = create_model("excursion_convnet")
    assert isinstance(model, ConvNet) and model.receptive_field == 1 + 6 * 4
    model.eval()
    x = torch.randn(1, 8, 200)
    whole = model(x)
    states = model.initial_state()
    outs = []
    for a, b in ((0, 5), (5, 6), (6, 90), (90, 200)):
        y, *states = model.stream(x[..., a:b], *states)
        outs.append(y)
    torch.testing.assert_close(torch.cat(outs, -1), whole, atol=1e-5, rtol=1e-5)
    x2 = x.clone()
    x2[..., 100] += 1.0
    d = (model(x2) - whole).abs().amax(dim=1)[0]
    assert torch.all(d[:100] == 0) and d[100] > 0


def test_convnet_learns_a_causal_filter():
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model = ConvNet(channels=8, layers=2, kernel=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(8, 8, 64)
    target = torch.zeros(8, 4, 64)
    target[..., 1:] = 0.5 * x[:, :4, :-1]     # depends on the previous step only: learnable causally
    first = None
    for _ in range(80):
        loss = torch.mean((model(x) - target) ** 2)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.set_num_threads(threads)
    assert loss.item() < 0.3 * first
