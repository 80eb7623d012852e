#!/usr/bin/env python3
"""Convert a train_gc.py checkpoint to a slim inference file in k-diffusion's format.

    python convert_for_inference_gc.py runs/digits_gc/digits_gc_00002400.pth -o digits_gc.safetensors
"""

from kdiff_gc.programs.convert import main

if __name__ == "__main__":
    main()
