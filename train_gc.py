#!/usr/bin/env python3
"""Train a k-diffusion model as a consistency model with generator-induced coupling.

    accelerate launch train_gc.py --config configs/cifar10_gc.json --name cifar10_gc
"""

from kdiff_gc.programs.train import main

if __name__ == "__main__":
    main()
