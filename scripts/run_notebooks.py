"""Run every notebook top to bottom with papermill, passing the preset to its `parameters` cell.

    python scripts/run_notebooks.py --preset sample     # what `make notebooks` runs
    python scripts/run_notebooks.py --preset full --dry-run

Executed copies go to output/<preset>/, never over the committed notebooks. Stops at the first
notebook that fails, naming it and the executed copy that shows the error.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import papermill

ROOT = Path(__file__).resolve().parent.parent


def notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=["sample", "full"], default="sample")
    ap.add_argument("--out", type=Path, default=ROOT / "output")
    ap.add_argument("--dry-run", action="store_true", help="only inject parameters, run nothing")
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in notebooks/")
    args = ap.parse_args(argv)

    os.environ["LESSONLIB_PROGRESS"] = "0"  # kernels write to files: static widgets, no bars in them
    out_dir = args.out / args.preset
    out_dir.mkdir(parents=True, exist_ok=True)
    for nb in args.notebooks or notebooks():
        target = out_dir / nb.name
        start = time.perf_counter()
        print(f"--> {nb.name} (preset={args.preset})", flush=True)
        try:
            papermill.execute_notebook(
                str(nb), str(target), parameters={"preset": args.preset}, cwd=str(nb.parent),
                prepare_only=args.dry_run, progress_bar=not args.dry_run, kernel_name="python3",
            )
        except papermill.PapermillExecutionError as err:
            print(f"FAILED: {nb.name}: {err.ename}: {err.evalue}\n  see {target}", file=sys.stderr)
            return 1
        print(f"    ok in {time.perf_counter() - start:.0f}s -> {target}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
