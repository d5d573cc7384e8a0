#!/usr/bin/env python3
"""Write N daily WRF-like netCDF-4 files (WRFDS_YYYY-MM-DD.nc) into OUTDIR.

Shaped like the seed workflow's archive (s3://wrf-se-ak-ar5/ccsm/rcp85/daily/2060/):
dimensions Time=1 (unlimited), interp_levels=9, south_north=250, west_east=320,
soil_layers_stag=4; 39 float32 variables (7 on pressure levels, 2 on soil
layers, 28 surface fields, lat, lon), each zlib level 4 + shuffle and stored
as a single chunk; coordinate variables Time (int32, hours since
2060-01-01 00:00:00) and interp_levels (float32); global attributes contact,
data, date, format, info.

Fields are smooth, deterministic (fixed seed) and change from day to day, so
a wrong concatenation order is visible in the values.  Values are quantised
to a few significant bits, which keeps files at a few MB and compression fast.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))  # tools/, for _bootstrap
import _bootstrap  # noqa: E402
_REPO = _bootstrap.use_repo_venv(__file__, warn_if_missing=True)

import argparse
import datetime as dt
import multiprocessing
import time

import numpy as np

NY, NX, NZ, NSOIL = 250, 320, 9, 4
EPOCH = dt.date(2060, 1, 1)
TIME_UNITS = "hours since 2060-01-01 00:00:00"
LEVELS = np.array([1000, 925, 850, 700, 600, 500, 400, 300, 200], dtype=np.float32)

# name: (units, description, mean, amplitude, quantum)  quantum: power of two, the value resolution
# (times QUANTUM_SCALE: coarser values compress faster and smaller; 4 gives about 2 MB per file)
QUANTUM_SCALE = 4.0
LEVEL_VARS = {
    "U": ("m s-1", "x-wind component", 5.0, 15.0, 2.0 ** -4),
    "V": ("m s-1", "y-wind component", 0.0, 15.0, 2.0 ** -4),
    "T": ("K", "temperature", 255.0, 25.0, 2.0 ** -3),
    "QVAPOR": ("kg kg-1", "water vapor mixing ratio", 0.004, 0.004, 2.0 ** -16),
    "GHT": ("m", "geopotential height", 5000.0, 4000.0, 2.0 ** 0),
    "W": ("m s-1", "z-wind component", 0.0, 0.5, 2.0 ** -8),
    "RH": ("%", "relative humidity", 60.0, 35.0, 2.0 ** -3),
}
SOIL_VARS = {
    "TSLB": ("K", "soil temperature", 272.0, 10.0, 2.0 ** -4),
    "SH2O": ("m3 m-3", "soil liquid water", 0.25, 0.15, 2.0 ** -10),
}
SURFACE_VARS = {
    "T2": ("K", "temperature at 2 m", 268.0, 18.0, 2.0 ** -4),
    "Q2": ("kg kg-1", "water vapor mixing ratio at 2 m", 0.004, 0.003, 2.0 ** -16),
    "U10": ("m s-1", "x-wind at 10 m", 2.0, 8.0, 2.0 ** -4),
    "V10": ("m s-1", "y-wind at 10 m", 0.0, 8.0, 2.0 ** -4),
    "PSFC": ("Pa", "surface pressure", 95000.0, 6000.0, 2.0 ** 2),
    "SLP": ("hPa", "sea level pressure", 1008.0, 20.0, 2.0 ** -4),
    "TSK": ("K", "surface skin temperature", 267.0, 20.0, 2.0 ** -4),
    "PBLH": ("m", "planetary boundary layer height", 600.0, 500.0, 2.0 ** 0),
    "HFX": ("W m-2", "upward heat flux at the surface", 20.0, 60.0, 2.0 ** -2),
    "LH": ("W m-2", "latent heat flux at the surface", 30.0, 40.0, 2.0 ** -2),
    "QFX": ("kg m-2 s-1", "upward moisture flux at the surface", 1e-5, 1e-5, 2.0 ** -24),
    "GRDFLX": ("W m-2", "ground heat flux", 0.0, 20.0, 2.0 ** -3),
    "SWDNB": ("W m-2", "downwelling shortwave flux at bottom", 150.0, 150.0, 2.0 ** -1),
    "SWUPB": ("W m-2", "upwelling shortwave flux at bottom", 40.0, 40.0, 2.0 ** -2),
    "LWDNB": ("W m-2", "downwelling longwave flux at bottom", 250.0, 60.0, 2.0 ** -2),
    "LWUPB": ("W m-2", "upwelling longwave flux at bottom", 300.0, 60.0, 2.0 ** -2),
    "SWDNT": ("W m-2", "downwelling shortwave flux at top", 300.0, 200.0, 2.0 ** -1),
    "SWUPT": ("W m-2", "upwelling shortwave flux at top", 100.0, 80.0, 2.0 ** -2),
    "LWUPT": ("W m-2", "upwelling longwave flux at top", 220.0, 40.0, 2.0 ** -2),
    "ALBEDO": ("1", "surface albedo", 0.4, 0.3, 2.0 ** -10),
    "EMISS": ("1", "surface emissivity", 0.95, 0.04, 2.0 ** -12),
    "SNOW": ("kg m-2", "snow water equivalent", 80.0, 80.0, 2.0 ** -3),
    "SNOWH": ("m", "physical snow depth", 0.4, 0.4, 2.0 ** -10),
    "CANWAT": ("kg m-2", "canopy water", 0.2, 0.2, 2.0 ** -10),
    "PCPT": ("mm", "total precipitation", 3.0, 3.0, 2.0 ** -6),
    "PCPC": ("mm", "convective precipitation", 0.5, 0.5, 2.0 ** -8),
    "SFROFF": ("mm", "surface runoff", 0.3, 0.3, 2.0 ** -8),
    "UDROFF": ("mm", "underground runoff", 0.2, 0.2, 2.0 ** -8),
}
assert len(LEVEL_VARS) == 7 and len(SOIL_VARS) == 2 and len(SURFACE_VARS) == 28

_BASE = {}


def _smooth(shape, r):
    """Sum of a few low-frequency waves, values in about [-1, 1]."""
    y = np.linspace(0.0, 1.0, shape[-2], dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, shape[-1], dtype=np.float32)[None, :]
    out = np.zeros((shape[-2], shape[-1]), dtype=np.float32)
    for _ in range(4):
        kx, ky = r.uniform(0.5, 3.0, 2)
        px, py = r.uniform(0, 2 * np.pi, 2)
        out += np.sin(2 * np.pi * kx * x + px).astype(np.float32) * np.cos(2 * np.pi * ky * y + py).astype(np.float32)
    return out / 4.0


def base_fields(seed):
    """Per variable: a (levels, ny, nx) base field and a day-dependent pattern; computed once."""
    if _BASE.get("seed") == seed:
        return _BASE
    r = np.random.default_rng(seed)
    fields = {}
    for group, nlev in ((LEVEL_VARS, NZ), (SOIL_VARS, NSOIL), (SURFACE_VARS, 0)):
        for name, (_, _, mean, amp, q) in group.items():
            planes = []
            for k in range(max(nlev, 1)):
                planes.append(_smooth((NY, NX), r) * (1.0 - 0.05 * k))
            base = np.stack(planes) if nlev else planes[0][None]
            fields[name] = (base.astype(np.float32), _smooth((NY, NX), r), float(mean), float(amp),
                            float(q) * QUANTUM_SCALE, nlev)
    yy, xx = np.meshgrid(np.linspace(0, 1, NY), np.linspace(0, 1, NX), indexing="ij")
    lat = (54.0 + 18.0 * yy + 1.5 * np.sin(np.pi * xx)).astype(np.float32)  # a gently curved grid
    lon = (-170.0 + 45.0 * xx + 3.0 * (yy - 0.5) * (xx - 0.5)).astype(np.float32)
    fields["lat"] = np.round(lat * 1024) / 1024
    fields["lon"] = np.round(lon * 1024) / 1024
    _BASE.clear()
    _BASE.update(fields)
    _BASE["seed"] = seed
    return _BASE


def day_field(spec, day_index):
    """Cheap per-day variation: a seasonal scale, a travelling pattern and a day offset."""
    base, pattern, mean, amp, q, nlev = spec
    season = np.float32(np.sin(2 * np.pi * day_index / 365.0))
    shift = np.float32(np.cos(2 * np.pi * day_index / 7.3))
    f = base * np.float32(amp * (1.0 + 0.2 * season)) + pattern * np.float32(0.3 * amp * shift)
    f += np.float32(mean + 0.01 * amp * (day_index % 97))
    f = np.round(f * np.float32(1.0 / q)) * np.float32(q)  # quantise: exact in float32, compresses well
    return f.astype(np.float32)[None] if nlev else f.astype(np.float32)


def write_day(args):
    outdir, date, seed = args
    import netCDF4
    fields = base_fields(seed)
    day_index = (date - EPOCH).days
    path = os.path.join(outdir, "WRFDS_%s.nc" % date.isoformat())
    tmp = path + ".tmp"
    with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
        nc.createDimension("Time", None)
        nc.createDimension("interp_levels", NZ)
        nc.createDimension("south_north", NY)
        nc.createDimension("west_east", NX)
        nc.createDimension("soil_layers_stag", NSOIL)
        nc.setncatts({
            "contact": "zarrmount test archive <nobody@example.invalid>",
            "data": "Synthetic WRF-like daily fields (tools/make-archive.py)",
            "date": "Mon Jan  1 00:00:00 UTC 2024",
            "format": "version 2",
            "info": "synthetic, deterministic (seed %d); not real model output" % seed,
        })
        t = nc.createVariable("Time", "i4", ("Time",))
        t.units = TIME_UNITS
        t.long_name = "time"
        t[0] = day_index * 24
        lv = nc.createVariable("interp_levels", "f4", ("interp_levels",))
        lv.units = "hPa"
        lv.description = "pressure levels"
        lv[:] = LEVELS
        common = dict(zlib=True, complevel=4, shuffle=True)
        for group, dims, chunks in (
                (LEVEL_VARS, ("Time", "interp_levels", "south_north", "west_east"), (1, NZ, NY, NX)),
                (SOIL_VARS, ("Time", "soil_layers_stag", "south_north", "west_east"), (1, NSOIL, NY, NX)),
                (SURFACE_VARS, ("Time", "south_north", "west_east"), (1, NY, NX))):
            for name, (units, desc, *_rest) in group.items():
                v = nc.createVariable(name, "f4", dims, chunksizes=chunks, **common)
                v.units = units
                v.description = desc
                v[:] = day_field(fields[name], day_index)
        for name, units, desc in (("lat", "degrees_north", "latitude"), ("lon", "degrees_east", "longitude")):
            v = nc.createVariable(name, "f4", ("south_north", "west_east"), chunksizes=(NY, NX), **common)
            v.units = units
            v.description = desc
            v[:] = fields[name]
    os.replace(tmp, path)
    return path, os.path.getsize(path)


def main():
    ap = argparse.ArgumentParser(
        description="Write N daily WRF-like netCDF-4 files WRFDS_YYYY-MM-DD.nc (deterministic).",
        epilog="Example: tools/make-archive.py /tmp/archive --days 365")
    ap.add_argument("outdir", metavar="OUTDIR")
    ap.add_argument("--days", type=int, required=True, metavar="N", help="number of daily files")
    ap.add_argument("--start", default="2060-01-01", metavar="YYYY-MM-DD", help="first day (default 2060-01-01)")
    ap.add_argument("--seed", type=int, default=2060, help="random seed of the base fields (default 2060)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    args = ap.parse_args()
    if args.days < 1:
        ap.error("--days must be >= 1")
    start = dt.date.fromisoformat(args.start)
    os.makedirs(args.outdir, exist_ok=True)
    dates = [start + dt.timedelta(days=i) for i in range(args.days)]
    work = [(args.outdir, d, args.seed) for d in dates]
    t0 = time.monotonic()
    total = 0
    done = 0
    if args.jobs > 1 and len(work) > 1:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(min(args.jobs, len(work)), initializer=base_fields, initargs=(args.seed,)) as pool:
            results = pool.imap(write_day, work)
            for path, size in results:
                done += 1
                total += size
                _progress(done, len(work), path, total, t0)
    else:
        for w in work:
            path, size = write_day(w)
            done += 1
            total += size
            _progress(done, len(work), path, total, t0)
    sys.stderr.write("\n")
    print("make-archive: %d files, %d bytes (%.1f MB) in %s (%.1f s)" % (
        done, total, total / 1e6, args.outdir, time.monotonic() - t0))
    return 0


def _progress(done, n, path, total, t0):
    if sys.stderr.isatty():
        sys.stderr.write("\r[%d/%d] %s  %.1f MB  %.1f s" % (done, n, os.path.basename(path), total / 1e6,
                                                          time.monotonic() - t0))
    elif done == n or done % 10 == 0 or done == 1:
        sys.stderr.write("[%d/%d] %s  %.1f MB  %.1f s\n" % (done, n, os.path.basename(path), total / 1e6,
                                                          time.monotonic() - t0))
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
