#!/usr/bin/env python3
"""Sample a consistency model trained with train_gc.py.

    python sample_gc.py runs/digits_gc/digits_gc_00002000.pth -n 64 --steps 2 -o samples.png
"""

from kdiff_gc.programs.sample import main

if __name__ == "__main__":
    main()
