"""PyTorch twin of Hallmark's DCGAN (src/gan/model.rs, src/gan/train.rs) for benches/gan.rs.

Prints one JSON object: training steps/s and generator inference images/s.
Usage: gan_torch.py --threads N --size 32 --latent 64 --g-width 32 --d-width 32 --steps K
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm


def generator(size, channels, latent, width):
    stages = size.bit_length() - 1 - 2
    layers, in_c = [], latent
    for i in range(stages):
        out_c = width << (stages - 1 - i)
        first = i == 0
        layers += [
            nn.ConvTranspose2d(in_c, out_c, 4, 1 if first else 2, 0 if first else 1, bias=False),
            nn.BatchNorm2d(out_c),
            nn.ReLU(),
        ]
        in_c = out_c
    layers += [nn.ConvTranspose2d(in_c, channels, 4, 2, 1), nn.Tanh()]
    return nn.Sequential(nn.Unflatten(1, (latent, 1, 1)), *layers)


def discriminator(size, channels, width):
    stages = size.bit_length() - 1 - 2
    layers, in_c = [], channels
    for i in range(stages):
        out_c = width << i
        layers += [spectral_norm(nn.Conv2d(in_c, out_c, 4, 2, 1)), nn.LeakyReLU(0.2)]
        in_c = out_c
    layers += [spectral_norm(nn.Conv2d(in_c, 1, 4, 1, 0)), nn.Flatten(0)]
    return nn.Sequential(*layers)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads; 0: torch's default")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--latent", type=int, default=64)
    p.add_argument("--g-width", type=int, default=32)
    p.add_argument("--d-width", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--infer-batches", default="1,64,256")
    p.add_argument("--infer-iters", type=int, default=10)
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    g = generator(a.size, a.channels, a.latent, a.g_width)
    d = discriminator(a.size, a.channels, a.d_width)
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    real = torch.rand(a.batch, a.channels, a.size, a.size) * 2 - 1
    z = torch.randn(a.batch, a.latent)

    def step():
        fake = g(z)
        logits = d(torch.cat([real, fake.detach()]))
        d_loss = F.softplus(-logits[: a.batch]).mean() + F.softplus(logits[a.batch :]).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = F.softplus(-d(fake)).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        return d_loss.item(), g_loss.item()

    for _ in range(3):
        step()
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    train_s = (time.perf_counter() - t) / a.steps
    g.eval()
    infer = {}
    with torch.no_grad():
        for b in [int(x) for x in a.infer_batches.split(",")]:
            zb = torch.randn(b, a.latent)
            g(zb)
            t = time.perf_counter()
            for _ in range(a.infer_iters):
                g(zb)
            infer[str(b)] = b * a.infer_iters / (time.perf_counter() - t)
    print(json.dumps({"train_step_s": train_s, "train_images_per_s": a.batch / train_s, "infer_images_per_s": infer}))


if __name__ == "__main__":
    main()
