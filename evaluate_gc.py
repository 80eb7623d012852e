#!/usr/bin/env python3
"""FID and KID of a consistency model's 1- and 2-step samples.

    python evaluate_gc.py runs/digits_gc/digits_gc_00002000.pth -n 2000 --reference digits_reference.pt
"""

from kdiff_gc.programs.evaluate import main

if __name__ == "__main__":
    main()
