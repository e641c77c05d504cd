"""Write one benchmark's section into docs/benchmarks.md, keeping the other scripts' sections."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, section: str) -> None:
    """Replace the section whose heading is `section`'s first line (or add it at the end)."""
    heading = section.splitlines()[0].strip()
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
        before = "\n".join(lines[:start]).rstrip("\n")
        after = "\n".join(lines[end:])
        new = (before + "\n\n" if before else "") + section.rstrip("\n") + ("\n\n" + after if after else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new.rstrip("\n") + "\n", encoding="utf-8")


def publish(section: str, out: str | Path, write: bool = True) -> None:
    """Print a benchmark's section and, unless told not to, write it into its file."""
    print(section)
    if write:
        write_section(Path(out), section)
