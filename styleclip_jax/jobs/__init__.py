"""Drivers for `main.py --mode=...`; each takes (config: ConfigDict, workdir: str)."""
