"""A portfolio tool's loop: signals in, target weights out (an example, not advice).

It follows every ticker's signals of one algorithm in a consumer group (so a restart resumes
where it left off), keeps the newest signal per ticker, and after each one prints target
weights: long only, in proportion to the expected rise to the close times its probability,
each capped, the rest in cash. Run beside `simsignal demo` or `simsignal run --feed redis`:

    python scripts/rebalance_example.py --redis-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import json

from simsignal.engine.adapters.subscriber import SignalReader
from simsignal.engine.core.signals import Signal


def target_weights(latest: dict[str, Signal], cap: float) -> dict[str, float]:
    """Weight ∝ max(pred_move, 0) × up_prob, each at most `cap`; what is left stays cash."""
    score = {t: max(0.0, s.pred_move) * s.up_prob for t, s in latest.items()}
    total = sum(score.values())
    if total <= 0:
        return {}
    return {t: min(cap, v / total) for t, v in sorted(score.items()) if v > 0}


def main() -> None:
    """Follow the signals and print the weights after each one (JSON lines)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--algo", default="sq", help="whose forecasts to trade on")
    parser.add_argument("--group", default="rebalancer")
    parser.add_argument("--consumer", default="example")
    parser.add_argument("--cap", type=float, default=0.2, help="largest weight of one ticker")
    parser.add_argument("--count", type=int, default=0, help="stop after N signals (0: never)")
    parser.add_argument("--from-start", action="store_true", help="a new group reads it all")
    args = parser.parse_args()
    latest: dict[str, Signal] = {}
    reader = SignalReader(args.redis_url, None, algos=[args.algo], group=args.group,
                          consumer=args.consumer, from_start=args.from_start)  # fmt: skip

    def rebalance(signal: Signal) -> None:
        latest[signal.ticker] = signal
        weights = target_weights(latest, args.cap)
        cash = 1.0 - sum(weights.values())
        print(json.dumps({"after": f"{signal.ticker} {signal.date} {signal.slot}",
                          "weights": weights, "cash": round(cash, 6)}), flush=True)  # fmt: skip

    try:
        reader.handle(rebalance, limit=args.count or None)
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()


if __name__ == "__main__":
    main()
