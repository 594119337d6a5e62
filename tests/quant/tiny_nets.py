"""Tiny float models exercising every supported op (test helpers, seeded)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class CausalConv1d(nn.Conv1d):
    """Left-padding conv, like edgesense.nn.fftnet.CausalConv1d (exposes ``context``)."""

    def __init__(self, cin: int, cout: int, k: int, dilation: int = 1) -> None:
        super().__init__(cin, cout, k, dilation=dilation)
        self.context = (k - 1) * dilation

    def forward(self, x):
        return super().forward(F.pad(x, (self.context, 0)))


class Cnn2d(nn.Module):
    """Conv-BN-ReLU, residual Add, MaxPool, strided Conv-ReLU6, AvgPool, GAP, Flatten, Linear, Softmax."""

    def __init__(self, cin: int = 2, classes: int = 5, width: int = 8) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, width, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(width)
        self.c2 = nn.Conv2d(width, width, 3, padding=1)
        self.b2 = nn.BatchNorm2d(width)
        self.pool = nn.MaxPool2d(2)
        self.c3 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.avg = nn.AvgPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x):
        h = F.relu(self.b1(self.c1(x)))
        h = F.relu(self.b2(self.c2(h)) + h)
        h = self.pool(h)
        h = self.avg(F.relu6(self.c3(h)))
        h = torch.flatten(self.gap(h), 1)
        return torch.softmax(self.fc(h), dim=1)


class Conv1dNet(nn.Module):
    """Causal dilated Conv1d stack with BN, residual adds and a linear 1x1 head (regression, like FFTNet)."""

    def __init__(self, cin: int = 8, width: int = 12, out: int = 4) -> None:
        super().__init__()
        self.inp = nn.Conv1d(cin, width, 1, bias=False)
        self.bn_in = nn.BatchNorm1d(width)
        self.convs = nn.ModuleList(CausalConv1d(width, width, 2, dilation=d) for d in (4, 2, 1))
        self.bns = nn.ModuleList(nn.BatchNorm1d(width) for _ in range(3))
        self.head = nn.Conv1d(width, out, 1)

    def forward(self, x):
        h = F.relu(self.bn_in(self.inp(x)))
        for conv, bn in zip(self.convs, self.bns):
            h = F.relu(bn(conv(h)) + h)
        return self.head(h)


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics so folding is exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_((torch.rand(n, generator=g) - 0.5) * 0.4)
    return model.eval()


def cnn2d(seed: int = 0) -> Cnn2d:
    torch.manual_seed(seed)
    return randomize_bn(Cnn2d(), seed)


def conv1d_net(seed: int = 0) -> Conv1dNet:
    torch.manual_seed(seed)
    return randomize_bn(Conv1dNet(), seed)
