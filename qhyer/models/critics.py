"""Goal-reaching critics that turn (s, a, g) into QHyer's conditioning value, and the expectile head Q̂_φ(s, g).

Every critic models the hindsight distribution of goals g reached after (s, a) in the data (behaviour occupancy,
Q^β(s, a, g) ∝ p^β_+(g | s, a); C-learning / Contrastive RL, Eysenbach et al. 2021, 2022) and offers
    loss(s, a, g) → scalar     training loss on a batch of hindsight pairs
    q(s, a, g)    → (n,)       the raw value the Q token is made of (the agent clips it)
on standardised inputs (n, ·). Kinds ('conditioning' in QHyerConfig):
  nf    conditional normalizing flow, Q = log p_θ(g | s, a) / dim(g)            (the paper's choice)
  cvae  conditional VAE of p(g | s, a), Q = ELBO / dim(g)                        (ablation: a lower bound)
  crl   contrastive critic φ(s, a)ᵀψ(g) trained with InfoNCE, Q = the logit       (ablation: a density ratio)
('none' and 'rtg' need no critic.) Densities are divided by dim(g) so the token scale does not grow with the goal
size (2 for maze xy, 28+ for full OGBench observations). Goals get Gaussian dequantisation noise during training
only: constant or binary goal dimensions (puzzle buttons) would otherwise have unbounded density.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from nflows.distributions.normal import ConditionalDiagonalNormal
from nflows.flows.base import Flow
from nflows.nn.nets import ResidualNet
from nflows.transforms.base import CompositeTransform
from nflows.transforms.coupling import AffineCouplingTransform
from torch import nn

from qhyer.errors import ConfigError
from qhyer.models.layers import mlp

CRITICS = ("nf", "cvae", "crl")


def expectile_loss(diff: torch.Tensor, tau: float) -> torch.Tensor:
    """L²_τ(u) = |τ − 1(u < 0)| · u² elementwise, u = target − prediction: with τ > ½ under-estimates cost more,
    so the minimiser is an upper expectile, the in-distribution "max" Q (IQL, Kostrikov et al. 2022)."""
    return torch.abs(tau - (diff < 0).to(diff.dtype)) * diff.pow(2)


class ExpectileHead(nn.Module):
    """Q̂_φ(s, g): an MLP on the standardised [s; g], regressed with `expectile_loss` onto the critic's Q."""

    def __init__(self, obs_dim: int, goal_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = mlp(obs_dim + goal_dim, hidden, 1)

    def forward(self, s: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([s, g], -1)).squeeze(-1)


class Critic(nn.Module):
    def __init__(self, goal_noise: float):
        super().__init__()
        self.goal_noise = goal_noise

    def dequantize(self, g: torch.Tensor) -> torch.Tensor:
        return g + self.goal_noise * torch.randn_like(g)

    def loss(self, s: torch.Tensor, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def q(self, s: torch.Tensor, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class FlowCritic(Critic):
    """Conditional RealNVP with nflows: affine couplings on alternating halves of g, each scale/shift net a
    `ResidualNet` seeing the context, over a context-dependent diagonal Gaussian base. The context is an MLP
    embedding of [s; a] shared by all layers. log p(g | s, a) = log N(f(g); μ(c), σ(c)) + log|det ∂f/∂g|, exact.

    The base carries the conditional location and scale: nflows' coupling scale is sigmoid(·) + 1e-3 ≤ 1.001,
    so the couplings alone could not represent goal densities narrower than the standard normal.
    """

    def __init__(self, context_dim: int, goal_dim: int, hidden: int, n_layers: int, goal_noise: float):
        super().__init__(goal_noise)
        if goal_dim < 2:
            raise ConfigError(f"the flow critic needs goals of at least 2 dimensions (got {goal_dim})",
                              "use method.conditioning=cvae or crl")
        self.goal_dim = goal_dim
        couplings = [AffineCouplingTransform(
            (torch.arange(goal_dim) + i) % 2,  # alternate which half is transformed
            lambda n_in, n_out: ResidualNet(n_in, n_out, hidden, context_features=hidden, num_blocks=2))
            for i in range(n_layers)]
        self.flow = Flow(CompositeTransform(couplings),
                         ConditionalDiagonalNormal([goal_dim], context_encoder=nn.Linear(hidden, 2 * goal_dim)),
                         embedding_net=mlp(context_dim, (hidden,), hidden))

    def log_prob(self, s: torch.Tensor, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return self.flow.log_prob(g, context=torch.cat([s, a], -1))  # (n,)

    def loss(self, s, a, g):
        return -self.log_prob(s, a, self.dequantize(g)).mean() / self.goal_dim

    def q(self, s, a, g):
        return self.log_prob(s, a, g) / self.goal_dim


class CVAECritic(Critic):
    """Conditional VAE (Sohn et al. 2015) of g given c = [s; a] with a N(0, I) prior: encoder q(z | g, c),
    Gaussian decoder p(g | z, c) with a learned per-dimension scale. Q uses the ELBO at the posterior mean
    (deterministic); training uses one reparameterised sample."""

    def __init__(self, context_dim: int, goal_dim: int, hidden: int, latent_dim: int, goal_noise: float):
        super().__init__(goal_noise)
        self.goal_dim = goal_dim
        self.encoder = mlp(goal_dim + context_dim, (hidden, hidden), 2 * latent_dim)
        self.decoder = mlp(latent_dim + context_dim, (hidden, hidden), goal_dim)
        self.log_std = nn.Parameter(torch.zeros(goal_dim))

    def elbo(self, s: torch.Tensor, a: torch.Tensor, g: torch.Tensor, sample: bool) -> torch.Tensor:
        c = torch.cat([s, a], -1)
        mu, log_std = self.encoder(torch.cat([g, c], -1)).chunk(2, -1)
        log_std = log_std.clamp(-10.0, 2.0)
        z = mu + torch.exp(log_std) * torch.randn_like(mu) if sample else mu
        recon = self.decoder(torch.cat([z, c], -1))
        log_lik = (-0.5 * ((g - recon) * torch.exp(-self.log_std)).pow(2) - self.log_std
                   - 0.5 * math.log(2 * math.pi)).sum(-1)
        kl = 0.5 * (mu.pow(2) + torch.exp(2 * log_std) - 1.0 - 2 * log_std).sum(-1)
        return log_lik - kl  # (n,)

    def loss(self, s, a, g):
        return -self.elbo(s, a, self.dequantize(g), sample=True).mean() / self.goal_dim

    def q(self, s, a, g):
        return self.elbo(s, a, g, sample=False) / self.goal_dim


class ContrastiveCritic(Critic):
    """Contrastive RL critic f(s, a, g) = φ(s, a)ᵀψ(g) (Eysenbach et al. 2022, arXiv 2206.07568), InfoNCE with the
    other goals of the batch as negatives. The softmax runs over the batch's (s, a) for each goal, so the optimum
    is log p(g | s, a)/p(g) plus a function of g only: actions are ranked as by the true Q for every goal."""

    def __init__(self, context_dim: int, goal_dim: int, hidden: int, repr_dim: int):
        super().__init__(goal_noise=0.0)
        self.phi = mlp(context_dim, (hidden, hidden), repr_dim)
        self.psi = mlp(goal_dim, (hidden, hidden), repr_dim)

    def loss(self, s, a, g):
        logits = self.phi(torch.cat([s, a], -1)) @ self.psi(g).T  # (n (s, a), n goals); positives on the diagonal
        return F.cross_entropy(logits.T, torch.arange(len(g), device=g.device))

    def q(self, s, a, g):
        return (self.phi(torch.cat([s, a], -1)) * self.psi(g)).sum(-1)
