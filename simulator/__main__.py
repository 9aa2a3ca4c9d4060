"""``python -m simulator``: run the provider simulator from the command line.

Owns argument parsing only; ``llmq simulate`` calls ``simulator.server.serve`` directly.
"""

from __future__ import annotations

import argparse

from simulator.config import SimConfig
from simulator.server import serve


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``--host --port --config --latency-ms --seed``."""
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--config", help="YAML/JSON file with a SimConfig")
    parser.add_argument("--latency-ms", type=float, help="latency for every provider")
    parser.add_argument("--seed", type=int, help="RNG seed (overrides the config file)")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """Build the ``SimConfig`` the arguments describe."""
    config = SimConfig.from_file(args.config) if args.config else SimConfig()
    if args.latency_ms is not None:
        config = config.with_latency(args.latency_ms)
    if args.seed is not None:
        config = config.model_copy(update={"seed": args.seed})
    return config


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    serve(host=args.host, port=args.port, config=config_from_args(args))


if __name__ == "__main__":
    main()
