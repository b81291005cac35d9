"""One module per CLI command, each with `add_parser(subparsers)` and `run(args) -> int`."""

COMMANDS = ("demo", "check_data", "pretrain", "train", "evaluate", "predict", "probe", "retrieve", "report")
