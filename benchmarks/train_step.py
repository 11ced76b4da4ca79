"""Seconds per CycleGAN training iteration on this machine: fp32 vs bf16 autocast (CPU).

    python benchmarks/train_step.py [--ngf 16 --n-blocks 9 --ndf 32 --crop 128 --batch 1 --steps 5]
    python benchmarks/train_step.py --crop 256 --upsampling resize --uncertainty --lambda-identity 0 --precisions fp32
        (the default model's recipe)

Runs the real Trainer.step (both generators, both discriminators, all losses, both optimiser
updates) on random crops, after one warm-up step, and prints s/it for each precision.
"""

from __future__ import annotations

import argparse
import time

import torch

from aimedx_desktop.engine.allocator import retain_freed_memory
from aimedx_desktop.engine.networks import UPSAMPLING
from aimedx_desktop.engine.training import TrainConfig, Trainer


def seconds_per_iteration(config: TrainConfig, steps: int) -> float:
    trainer = Trainer(config)
    shape = (config.batch_size, 1, config.crop_size, config.crop_size)
    ct, mr = torch.rand(shape) * 2 - 1, torch.rand(shape) * 2 - 1
    pair_masks = torch.ones(config.batch_size, 2, config.crop_size, config.crop_size) if config.paired else None
    trainer.step(ct, mr, pair_masks)
    started = time.perf_counter()
    for _ in range(steps):
        trainer.step(ct, mr, pair_masks)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--n-blocks", type=int, default=9)
    parser.add_argument("--ndf", type=int, default=32)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--upsampling", choices=UPSAMPLING, default="transpose")
    parser.add_argument("--paired", action="store_true", help="every item paired (the supervised term on all pixels)")
    parser.add_argument("--uncertainty", action="store_true", help="with the uncertainty head (implies --paired)")
    parser.add_argument("--lambda-identity", type=float, default=0.5, help="0 skips the identity term's two generator runs")
    args = parser.parse_args()
    retain_freed_memory()  # as `aimedx train` does
    paired = args.paired or args.uncertainty
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, ngf {args.ngf}, {args.n_blocks} blocks, "
          f"ndf {args.ndf}, crop {args.crop}, batch {args.batch}, {args.upsampling} upsampling"
          + (", paired" if paired else "") + (", uncertainty" if args.uncertainty else ""))
    for precision in args.precisions:
        config = TrainConfig(ct=[], mr=[], out="", ngf=args.ngf, n_blocks=args.n_blocks, ndf=args.ndf,
                             crop_size=args.crop, batch_size=args.batch, precision=precision, device="cpu",
                             upsampling=args.upsampling, paired=paired, uncertainty=args.uncertainty,
                             lambda_identity=args.lambda_identity)
        print(f"{precision:5s} {seconds_per_iteration(config, args.steps):7.2f} s/it", flush=True)


if __name__ == "__main__":
    main()
