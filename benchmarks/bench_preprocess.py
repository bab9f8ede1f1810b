"""asv: packing a full Sony frame (2848 x 4256) - lowbench's pack vs SID's reference vs a copy.

The same functions `python benchmarks/pack_speed.py` compares in one run (ratios printed there).
"""

from lowbench.measure import preprocess


class Pack:
    """Bayer mosaic (uint16) -> packed float32 (4, H/2, W/2), per full frame."""

    def setup(self):
        self.frame = preprocess.make_frame()
        preprocess.lowbench_pack(self.frame)  # compile the numba kernel before timing

    def time_lowbench_pack(self):
        preprocess.lowbench_pack(self.frame)

    def time_sid_reference_pack(self):
        preprocess.sid_reference_pack(self.frame)

    def time_copy_floor(self):
        preprocess.copy_floor(self.frame)
