"""A study's cost side by side: every registered configuration trained an epoch at a time, round-robin in
one process, its time per step over SGD's in the same round (process-CPU time for the CPU study, wall time
between device synchronisations for a study on a GPU, as sparsam.book.study.cost.CLOCKS says).

    OMP_NUM_THREADS=1 python benchmarks/bench_study_cost.py --registration results/study/cost_registration.yaml
    OMP_NUM_THREADS=1 python benchmarks/bench_study_cost.py --out results/study/cost_side_by_side.json
    python benchmarks/bench_study_cost.py --rounds 2 --names sgd sam cost-aware-0.9      # a quick look
    python benchmarks/bench_study_cost.py --study results/gpu_study/gpu_study.yaml --names sgd sam ssam-f-0.5 \
        cost-aware-0.9 --out $OUT/cost_side_by_side.json       # the GPU study's pilot look, on its GPU

With --registration: the pre-registered measurement that decides the study's cost comparisons (its
configurations, seed, rounds and output from the registration; refused in a dirty tree, so the record's
commit holds the registration and the code measured). Without: an unregistered look that decides
nothing. Not part of the test suite. See sparsam.book.study.cost.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]  # this script's checkout (the book's root)
sys.path.insert(0, str(REPO))

from sparsam.book.study import cost as study_cost, model as study_model  # noqa: E402
from sparsam.book.layout import STUDY_FILE  # noqa: E402
from sparsam.experiment.provenance import provenance  # noqa: E402
from sparsam.experiment.store import atomic_write_json  # noqa: E402
from sparsam.book.study import load_study  # noqa: E402


def _relative(path: str | Path) -> str:
    resolved = Path(path).resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else resolved.name


def recorded_args(args: argparse.Namespace) -> dict:
    """The arguments as the record keeps them: no output path, the study's (and registration's) path
    relative to the repository."""
    return {**{k: v for k, v in vars(args).items() if k != "out"}, "study": _relative(args.study),
            "registration": _relative(args.registration) if args.registration else None}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default=str(REPO / STUDY_FILE), help="the pre-registration (default: the CPU study)")
    parser.add_argument("--names", nargs="+", default=None, help="configurations (default: all; sgd is needed)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds after one warm-up epoch each")
    parser.add_argument("--seed", type=int, default=0, help="the registered seed of every configuration")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the study: 1)")
    parser.add_argument("--registration", default=None,
                        help="the pre-registered measurement: configurations, seed, rounds and output from it")
    parser.add_argument("--out", default=None, help="write the JSON record here")
    parser.add_argument("--plan-registration", nargs=2, default=None, metavar=("PILOT.json", "OUT.yaml"),
                        help="measure nothing: write the registration of the study's cost measurement, its rounds "
                             "planned from the unregistered look PILOT.json (sparsam.book.study.cost."
                             "registration_from_pilot), its record beside OUT.yaml; commit it before the measurement")
    args = parser.parse_args(argv)
    if args.plan_registration:
        pilot, target = (Path(p) for p in args.plan_registration)
        spec = study_cost.registration_from_pilot(_relative(args.study), _relative(pilot),
                                                  _relative(target.with_name("cost_interleaved.json")),
                                                  seed=args.seed, threads=args.threads)
        target.write_text("# Pre-registration of the interleaved cost measurement, planned from "
                          f"{_relative(pilot)} by benchmarks/bench_study_cost.py --plan-registration;\n# committed "
                          "in its own commit BEFORE the measurement runs (sparsam.book.study.cost).\n"
                          + yaml.safe_dump(spec, sort_keys=False, width=110, default_flow_style=None))
        study_model.load_cost_registration(target)  # it must read back as a registration
        print(f"wrote {target}: {spec['measurement']['rounds']} rounds of {spec['measurement']['configurations']}")
        return spec
    if args.threads < 1:
        parser.error(f"--threads must be an int >= 1, got {args.threads}")
    if args.registration:
        registration = study_model.load_cost_registration(args.registration)
        args.study = str(registration.study_path)
        args.names, args.seed = list(registration.configurations), registration.seed
        args.rounds, args.threads = registration.rounds, registration.threads
        args.out = args.out or str(registration.record)
    study = load_study(args.study)
    device = torch.device(study_model.study_device(study, args.names))
    made_with = provenance(device)
    if args.registration and (made_with["git_dirty"] is True or not made_with["git_commit"]):
        parser.error("--registration needs a clean tree at a known commit: commit the registration and the code "
                     "first (without .git, name the commit in SPARSAM_GIT_COMMIT)")
    torch.set_num_threads(args.threads)
    load_start, start = os.getloadavg(), time.perf_counter()
    measured = study_cost.measure(study, args.names, rounds=args.rounds, seed=args.seed)
    table = study_cost.ratios(measured)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    record = {"machine": {"threads": torch.get_num_threads(), "gpu": gpu, "loadavg_start": list(load_start),
                          "loadavg_end": list(os.getloadavg()), "wall_seconds": time.perf_counter() - start},
              "provenance": made_with, "args": recorded_args(args),
              "measured": measured.to_dict(orient="records"), "ratios": table.to_dict(orient="records")}
    if args.out:
        atomic_write_json(Path(args.out), record)
        print(f"wrote {args.out}")
    return record


if __name__ == "__main__":
    main()
