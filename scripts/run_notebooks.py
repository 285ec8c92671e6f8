"""Run every notebook top to bottom with papermill, passing the preset (and a seed) to its `parameters` cell.

    python scripts/run_notebooks.py                     # `make notebooks`: each notebook's own preset
    python scripts/run_notebooks.py --preset sample     # every notebook on the data samples (a quick look)
    python scripts/run_notebooks.py --preset full --dry-run
    python scripts/run_notebooks.py --seed 100 --precision fp32 notebooks/04_imdb_language_model.ipynb
    python scripts/run_notebooks.py --robustness        # what `make robustness` runs

Without --preset each notebook runs on the preset of its parameters cell (today the data samples for
all of them). Executed copies go to output/<preset>/
(output/default/ without one), never over the committed notebooks. Stops at the first
notebook that fails, naming it and the executed copy that shows the error.

`--robustness` checks that the notebooks' asserted findings survive other seeds and other numerics: every
notebook runs once per seed block (`--seeds`, default 100 and 200: no seed the committed run uses),
and notebooks 04 and 05 once more at the committed seed in the precision this CPU does not pick by itself
(fp32 on a CPU with native bf16; on one without, emulated bf16 would take hours, so that run is skipped
and the table says so). Each run has its own data cache under output/robustness/<run>/data, so the
committed run's saved LM and classifier are never touched; a failed notebook does not stop the others.
The table (notebook x run: passed or the failing line, minutes; the CPU) is printed and written to
output/robustness/table.md.
"""

import argparse
import os
import re
import sys
import time
from pathlib import Path

import papermill

from lessonlib.data import CACHE_ENV
from lessonlib.engine.numerics import PRECISION_ENV, cpu_info, native_amp, numerics_identity

ROOT = Path(__file__).resolve().parent.parent
PRECISION_NOTEBOOKS = ("04_", "05_")  # the notebooks whose training precision follows the CPU


def notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def failing_line(err: papermill.PapermillExecutionError) -> str:
    """The error and the cell line that raised it (the '---->' line of the kernel's traceback; '--->' for
    line numbers of two digits)."""
    plain = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in err.traceback]
    marked = [line for block in plain for line in block.splitlines() if re.match(r"\s*-+>\s*\d", line)]
    where = re.sub(r"^\s*-+>\s*\d+\s*", "", marked[-1]).strip() if marked else ""
    what = f"{err.ename}: {err.evalue}".rstrip(": ")
    return f"{what} at `{where}`" if where else what


def run(nb: Path, target: Path, parameters: dict, env: dict, dry_run: bool = False) -> str | None:
    """Execute `nb` into `target` with `parameters`, the kernel seeing `env` on top of ours; None if it
    ran clean, else the failing line."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        papermill.execute_notebook(str(nb), str(target), parameters=parameters, cwd=str(nb.parent),
                                   prepare_only=dry_run, progress_bar=not dry_run, kernel_name="python3")
        return None
    except papermill.PapermillExecutionError as err:
        return failing_line(err)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def robustness_runs(seeds: list[int]) -> list[dict]:
    """The runs: one per seed block at the native precision, then 04/05 in the other precision."""
    runs = [{"name": f"seed {s}", "parameters": {"seed": s}, "env": {}, "only": None} for s in seeds]
    native_bf16 = native_amp("cpu") == "bf16"
    other = "fp32" if native_bf16 else "bf16"
    runs.append({"name": f"{other}, committed seed", "parameters": {}, "env": {PRECISION_ENV: other},
                 "only": PRECISION_NOTEBOOKS,
                 "skip": None if native_bf16 else "skipped: no native bf16 on this CPU (emulated: too slow)"})
    return runs


def cpu_name() -> str:
    ident = numerics_identity("cpu")
    flags = "+".join(ident["cpu_flags"]) or "no AVX2"
    name = cpu_info("model name") or ident["machine"]
    return f"{name} ({flags}), {ident['threads']} threads, torch {ident['torch']}"


def robustness(args, paths: list[Path]) -> int:
    root = args.out / "robustness"
    results = {}  # (run name, notebook name) -> cell text
    runs = robustness_runs(args.seeds)
    for r in runs:
        run_dir = root / r["name"].replace(" ", "-").replace(",", "")
        (run_dir / "data").mkdir(parents=True, exist_ok=True)
        env = {CACHE_ENV: str((run_dir / "data").resolve()), **r["env"]}
        for nb in paths:
            if r["only"] and not nb.name.startswith(r["only"]):
                continue
            if r.get("skip"):
                results[r["name"], nb.name] = r["skip"]
                continue
            print(f"--> {nb.name} ({r['name']})", flush=True)
            start = time.perf_counter()
            parameters = {**preset_parameter(args), **r["parameters"]}
            error = run(nb, run_dir / nb.name, parameters, env, args.dry_run)
            minutes = (time.perf_counter() - start) / 60
            results[r["name"], nb.name] = f"FAILED: {error}" if error else f"passed, {minutes:.1f} min"
            print(f"    {results[r['name'], nb.name]}", flush=True)
    names = [r["name"] for r in runs]
    lines = [f"CPU: {cpu_name()}; preset {args.preset or 'each notebook own'}", "",
             "| notebook | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for nb in paths:
        lines.append(f"| {nb.stem} | " + " | ".join(results.get((n, nb.name), "-") for n in names) + " |")
    table = "\n".join(lines)
    root.mkdir(parents=True, exist_ok=True)
    (root / "table.md").write_text(table + "\n")
    print(table)
    return 1 if any(v.startswith("FAILED") for v in results.values()) else 0


def preset_parameter(args) -> dict:
    """The preset to inject: the command line's, or none (each notebook keeps its own)."""
    return {"preset": args.preset} if args.preset else {}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=["sample", "full"],
                    help="every notebook's data (default: each notebook's own preset)")
    ap.add_argument("--seed", type=int, help="every notebook's seed (default: the one in its parameters)")
    ap.add_argument("--precision", choices=["fp32", "bf16"],
                    help=f"force the IMDB notebooks' training precision (sets {PRECISION_ENV}; default: "
                         "bf16 where the CPU computes it natively, else fp32)")
    ap.add_argument("--robustness", action="store_true", help="the seed blocks and the other precision")
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 200], help="--robustness's seed blocks")
    ap.add_argument("--out", type=Path, default=ROOT / "output")
    ap.add_argument("--dry-run", action="store_true", help="only inject parameters, run nothing")
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in notebooks/")
    args = ap.parse_args(argv)

    os.environ["LESSONLIB_PROGRESS"] = "0"  # kernels write to files: static widgets, no bars in them
    paths = [p.resolve() for p in args.notebooks] or notebooks()
    if args.robustness:
        return robustness(args, paths)
    out_dir = args.out / (args.preset or "default")
    out_dir.mkdir(parents=True, exist_ok=True)
    parameters = preset_parameter(args) | ({"seed": args.seed} if args.seed is not None else {})
    env = {PRECISION_ENV: args.precision} if args.precision else {}
    for nb in paths:
        target = out_dir / nb.name
        start = time.perf_counter()
        print(f"--> {nb.name} ({', '.join(f'{k}={v}' for k, v in parameters.items())})", flush=True)
        error = run(nb, target, parameters, env, args.dry_run)
        if error:
            print(f"FAILED: {nb.name}: {error}\n  see {target}", file=sys.stderr)
            return 1
        print(f"    ok in {time.perf_counter() - start:.0f}s -> {target}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
