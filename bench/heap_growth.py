"""`python -m bench.heap_growth FOLDER/<pid> [FIRST] [LAST]`: what a server's memory grew by between two
of the snapshots `python -m bench.soak --observe FOLDER` left (by default the second and the last: the first
is taken before any load).

It prints, for every snapshot, the traced Python heap (with --trace-heap), the objects the collector tracks,
glibc malloc's arenas (MiB taken from the system, in use, free; mmapped blocks) and pymalloc's (its 1 MiB
arenas now and at most, and the MiB of small objects in them and free; not under tracing);
then the allocation sites whose live bytes grew most between FIRST and LAST (tracemalloc, by traceback) and
the object types whose count grew most (gc.get_objects()).
"""

import json
import re
import sys
import tracemalloc
from collections import Counter
from pathlib import Path

MIB = 1024 * 1024
TOP = 25


def pymalloc(stats: str, label: str) -> int | None:
    """A figure from sys._debugmallocstats() (which says nothing under tracemalloc)."""
    found = re.search(rf"^# {label}\s*=\s*([\d,]+)", stats, re.MULTILINE)
    return int(found.group(1).replace(",", "")) if found else None


def pymalloc_columns(stats: str) -> str:
    """pymalloc's arenas (of 1 MiB), now and at most, and the MiB of their blocks in use and free."""
    arenas, peak = pymalloc(stats, "arenas allocated current"), pymalloc(stats, "arenas highwater mark")
    used, free = pymalloc(stats, "bytes in allocated blocks"), pymalloc(stats, "bytes in available blocks")
    if arenas is None or peak is None or used is None or free is None:
        return f"{'-':>9}{'-':>9}{'-':>8}"
    return f"{f'{arenas}/{peak}':>9}{used / MIB:>9.1f}{free / MIB:>8.1f}"


def print_sites(folder: Path, first: int, last: int) -> None:
    # tracemalloc's own bookkeeping is not the server's.
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    before = tracemalloc.Snapshot.load(str(folder / f"{first}.snapshot")).filter_traces(ignore)
    after = tracemalloc.Snapshot.load(str(folder / f"{last}.snapshot")).filter_traces(ignore)
    print(f"\nallocation sites that grew most from snapshot {first} to {last} (live bytes):")
    for stat in after.compare_to(before, "traceback")[:TOP]:
        print(f"\n{stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks (now {stat.size / 1024:.1f} KiB)")
        for line in stat.traceback.format(limit=6, most_recent_first=True):
            print(f"    {line}")


def main(argv: list[str]) -> int:
    folder = Path(argv[0])
    numbers = sorted(int(path.stem) for path in folder.glob("*.json"))
    first = int(argv[1]) if len(argv) > 1 else numbers[min(1, len(numbers) - 1)]
    last = int(argv[2]) if len(argv) > 2 else numbers[-1]
    facts = {number: json.loads((folder / f"{number}.json").read_text()) for number in numbers}
    print(f"{'snapshot':>8}{'RSS MiB':>9}{'heap MiB':>10}{'blocks':>9}{'garbage':>9}{'gc objects':>12}{'arena MiB':>11}{'in use':>8}{'free':>8}"
          f"{'mmapped':>9}{'arenas':>9}{'objects':>9}{'free':>8}")
    print(f"{'':>8}{'':>9}{'(traced)':>10}{'':>18}{'':>12}{'(glibc malloc)':>27}{'':>9}{'(pymalloc MiB)':>26}")
    for number, fact in facts.items():
        malloc = fact["malloc"]
        heap = "-" if fact["heap"] is None else f"{fact['heap'] / MIB:.1f}"
        blocks = fact.get("blocks", "-")
        # Blocks the collection before the snapshot freed: cyclic garbage the thresholds had left waiting.
        garbage = fact["blocks_before_collection"] - fact["blocks"] if "blocks" in fact else "-"
        rss = f"{fact['rss'] / MIB:.0f}" if "rss" in fact else "-"
        print(f"{number:>8}{rss:>9}{heap:>10}{blocks:>9}{garbage:>9}{sum(fact['types'].values()):>12}{malloc['arena'] / MIB:>11.1f}"
              f"{malloc['uordblks'] / MIB:>8.1f}{malloc['fordblks'] / MIB:>8.1f}{malloc['hblkhd'] / MIB:>9.1f}"
              f"{pymalloc_columns(fact['pymalloc'])}")
    if (folder / f"{last}.snapshot").exists():
        print_sites(folder, first, last)
    grown = Counter(facts[last]["types"])
    grown.subtract(facts[first]["types"])
    print(f"\nobject types whose count grew most from snapshot {first} to {last}:")
    for name, change in grown.most_common(TOP):
        print(f"{change:+8d}  {name} (now {facts[last]['types'].get(name, 0)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
