"""Energy, CO2e and cost of a run, measured with codecarbon's offline tracker (no network).

    meter = EnergyMeter(country="DEU")      # starts measuring (or does nothing without codecarbon)
    meter.reading()                          # {'energy_kwh': ..., 'co2e_kg': ..., ...} so far
    meter.state_dict() / load_state_dict()   # the totals of earlier sessions of the same run

codecarbon reads RAPL on CPUs when /sys/class/powercap is readable, NVML on NVIDIA GPUs, and
otherwise estimates the CPU's power from its TDP (× its load); `method` records which.

One tracker serves the whole process (starting one costs seconds of hardware probing, and a
test session or a sweep worker builds many trainers): each meter counts the tracker's energy
from the moment it was made. The totals are records, not training state: they never feed a
random stream, and the trainer keeps them in the checkpoint's state.json (beside the elapsed
time), not in training_state.pt, so a resumed run stays bit-exact with a straight one.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
from typing import Any

DEFAULT_PRICE_PER_KWH = 0.30  # € per kWh (seeds/000 paid 0.35)
CURRENCY = "€"
STALE_S = 5.0  # metrics lines reuse a power sample at most this old

_lock = threading.Lock()
_tracker: Any = None  # the process's OfflineEmissionsTracker, started on first use
_tracker_country: str | None = None


def codecarbon_available() -> bool:
    try:
        import codecarbon  # noqa: F401
    except ImportError:
        return False
    return True


def _shared_tracker(country: str) -> Any:
    """The process's running OfflineEmissionsTracker (started once, stopped at exit)."""
    global _tracker, _tracker_country
    with _lock:
        if _tracker is None or _tracker_country != country:
            from codecarbon import OfflineEmissionsTracker

            logging.getLogger("codecarbon").setLevel(logging.ERROR)
            if _tracker is not None:
                _tracker.stop()
            import inspect

            # No output files: codecarbon ≥ 3 says so with output_methods, older with save_to_file.
            quiet = ({"output_methods": []} if "output_methods" in
                     inspect.signature(OfflineEmissionsTracker.__init__).parameters
                     else {"save_to_file": False})  # fmt: skip
            _tracker = OfflineEmissionsTracker(
                country_iso_code=country, measure_power_secs=15, log_level="error",
                tracking_mode="process", project_name="ganvas", **quiet,
            )  # fmt: skip
            _tracker.start()
            _tracker_country = country
            atexit.register(_stop_tracker)
        return _tracker


def _stop_tracker() -> None:
    global _tracker
    with _lock:
        if _tracker is not None:
            with contextlib.suppress(Exception):  # at exit, a failing stop must hide nothing
                _tracker.stop()
            _tracker = None


def _method(tracker: Any) -> str:
    """What codecarbon measured with: 'RAPL', 'NVML', 'TDP estimate', joined by ' + '."""
    names = []
    for hardware in getattr(tracker, "_hardware", []):
        kind = type(hardware).__name__
        if kind == "CPU":
            mode = str(getattr(hardware, "_mode", ""))
            if "rapl" in mode:
                names.append("RAPL")
            elif "powermetrics" in mode or "power_gadget" in mode:
                names.append(mode)
            else:  # 'cpu_load' (TDP × load) or 'constant' (TDP)
                names.append(f"TDP estimate ({mode})" if mode else "TDP estimate")
        elif kind == "GPU":
            names.append("NVML")
    return " + ".join(names) or "unknown"


class EnergyMeter:
    """Energy and CO2e of one run: this session's share of the process tracker plus the
    totals of the run's earlier sessions (restored from its checkpoint).

    Args:
        country: ISO 3166 alpha-3 code whose electricity mix codecarbon uses for CO2e.
        carbon_intensity: kg CO2e per kWh; > 0 replaces the country's figure.
        price_per_kwh: cost of a kWh, in `CURRENCY`.
        enabled: False makes every reading zero and starts nothing.
    """

    def __init__(self, country: str = "DEU", carbon_intensity: float = 0.0,
                 price_per_kwh: float = DEFAULT_PRICE_PER_KWH, enabled: bool = True) -> None:  # fmt: skip
        self.country, self.carbon_intensity = country, carbon_intensity
        self.price_per_kwh = price_per_kwh
        self.base = {"energy_kwh": 0.0, "co2e_kg": 0.0, "seconds": 0.0}
        self.method = "off"
        self.tracker = None
        if enabled and codecarbon_available():
            try:
                self.tracker = _shared_tracker(country)
                self.method = _method(self.tracker)
            except Exception as err:  # noqa: BLE001 - energy is a record; never stop training
                self.method = f"unavailable ({type(err).__name__}: {err})"
        elif enabled:
            self.method = "unavailable (pip install 'ganvas[energy]')"
        self._start_kwh, self._start_co2 = self._tracker_totals()
        self._start_time = time.perf_counter()

    @property
    def active(self) -> bool:
        return self.tracker is not None

    def _tracker_totals(self, fresh: bool = True) -> tuple[float, float]:
        """(kWh, kg CO2e) the process tracker has counted since it started. A sample costs
        ~15 ms of CPU (psutil): unless `fresh`, one newer than STALE_S seconds is reused."""
        if self.tracker is None:
            return 0.0, 0.0
        try:  # codecarbon's running totals have no public reader: its own attributes
            with _lock:
                if fresh or time.perf_counter() - self.tracker._last_measured_time > STALE_S:
                    self.tracker._measure_power_and_energy()
                kwh = float(self.tracker._total_energy.kWh)
                self.tracker._update_emissions()  # CO2e of the country's mix, its own data
                co2 = float(self.tracker._total_emissions)
        except AttributeError as err:  # another codecarbon: stop measuring, keep training
            self.tracker, self.method = None, f"unavailable (this codecarbon: {err})"
            return 0.0, 0.0
        return kwh, co2

    def reading(self, fresh: bool = True) -> dict[str, Any]:
        """Totals over the whole run so far: energy_kwh, co2e_kg, cost, seconds, method.
        With `fresh` False (metrics lines), a power sample up to STALE_S old is reused."""
        kwh, co2 = self._tracker_totals(fresh)
        session_kwh = max(kwh - self._start_kwh, 0.0)
        session_co2 = max(co2 - self._start_co2, 0.0)
        if self.carbon_intensity > 0:
            session_co2 = session_kwh * self.carbon_intensity
        total_kwh = self.base["energy_kwh"] + session_kwh
        return {
            "energy_kwh": total_kwh,
            "co2e_kg": self.base["co2e_kg"] + session_co2,
            "cost": total_kwh * self.price_per_kwh,
            "price_per_kwh": self.price_per_kwh,
            "seconds": self.base["seconds"] + time.perf_counter() - self._start_time,
            "method": self.method,
            "country": self.country,
        }

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.reading().items() if k != "cost"}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from an earlier session's totals (a resume)."""
        for key in self.base:
            self.base[key] = float(state.get(key, 0.0))
        self._start_kwh, self._start_co2 = self._tracker_totals()
        self._start_time = time.perf_counter()


def format_energy(reading: dict[str, Any]) -> str:
    """'2.31 kWh · 0.92 kg CO2e · 0.69 € at 0.30 €/kWh' (small runs get more digits)."""

    def fmt(x: float) -> str:
        return f"{x:.2f}" if x >= 0.01 or x == 0 else f"{x:.3g}"

    return (f"{fmt(reading['energy_kwh'])} kWh · {fmt(reading['co2e_kg'])} kg CO2e · "
            f"{fmt(reading['cost'])} {CURRENCY} at {reading['price_per_kwh']:.2f} "
            f"{CURRENCY}/kWh")  # fmt: skip
