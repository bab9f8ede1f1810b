"""asv suite over every model x quantization x runtime variant on the task's input (default: synth).

Thin front door to lowbench.harness: see lowbench/asv_suite.py. Units: seconds (asv time_),
bytes (asv peakmem_), and the unit attribute of each track_.
"""

from lowbench import asv_suite

PARAMS = (asv_suite.MODELS, asv_suite.QUANTS, asv_suite.RUNTIMES)
PARAM_NAMES = ["model", "quant", "runtime"]


class Speed:
    """Model-only forward and end-to-end image latency (the harness's timed callables)."""

    params = PARAMS
    param_names = PARAM_NAMES
    timeout = 900
    warmup_time = 0.5
    min_run_count = 3

    def setup(self, model, quant, runtime):
        self.session = asv_suite.session(model, quant, runtime)  # NotImplementedError: skip
        self.pair = self.session.pairs[0]
        self.session.forward_once()

    def time_forward(self, model, quant, runtime):
        self.session.forward_once()

    def time_end_to_end(self, model, quant, runtime):
        self.session.process_pair(self.pair)

    def peakmem_forward(self, model, quant, runtime):
        # asv's own figure: peak RSS of the asv benchmark process (track_peak_rss_mib is
        # lowbench's clean-worker figure, the one evaluate records)
        self.session.forward_once()


class Measures:
    """Quality, size, memory and energy: measured once per environment in setup_cache."""

    params = PARAMS
    param_names = PARAM_NAMES
    timeout = 3600

    def setup_cache(self):
        return asv_suite.measure_all()

    def setup(self, cache, model, quant, runtime):
        asv_suite.require_measured(cache, model, quant, runtime)  # NotImplementedError: skip

    def track_psnr(self, cache, model, quant, runtime):
        return asv_suite.lookup(cache, model, quant, runtime, "psnr_db")

    track_psnr.unit = "dB"

    def track_ssim(self, cache, model, quant, runtime):
        return asv_suite.lookup(cache, model, quant, runtime, "ssim")

    track_ssim.unit = "SSIM"

    def track_params(self, cache, model, quant, runtime):
        return asv_suite.lookup(cache, model, quant, runtime, "size", "params")

    track_params.unit = "parameters"

    def track_size_bytes(self, cache, model, quant, runtime):
        return asv_suite.lookup(cache, model, quant, runtime, "size", "size_bytes")

    track_size_bytes.unit = "bytes"

    def track_peak_rss_mib(self, cache, model, quant, runtime):
        return asv_suite.lookup(cache, model, quant, runtime, "memory", "peak_rss_mib")

    track_peak_rss_mib.unit = "MiB"

    def track_swap_peak_mib(self, cache, model, quant, runtime):
        return asv_suite.lookup(cache, model, quant, runtime, "memory", "swap_peak_mib")

    track_swap_peak_mib.unit = "MiB"


class Energy:
    """Energy per inference (mJ, net of the idle baseline) from the best meter present."""

    params = PARAMS
    param_names = PARAM_NAMES
    timeout = 900

    def setup(self, model, quant, runtime):
        asv_suite.require_energy_meter()  # NotImplementedError -> asv skip, never 0
        self.session = asv_suite.session(model, quant, runtime)

    def track_energy_mj(self, model, quant, runtime):
        return asv_suite.energy_mj(self.session)

    track_energy_mj.unit = "mJ"
