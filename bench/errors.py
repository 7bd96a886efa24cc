"""Error types the harness raises. Each message is one line that names the problem (file, column, value)."""


class BenchError(Exception):
    """Base class: a user-facing error printed as one line by the CLI."""


class DataFormatError(BenchError):
    """A data file is malformed: the message names the file, the line or column, and the value."""


class RecipeError(BenchError):
    """A dataset recipe is missing a field, names an unknown option or a missing path."""


class InvariantError(BenchError):
    """A result breaks an invariant every correct metric set satisfies (e.g. NDCG@k > HR@k)."""


class MethodError(BenchError):
    """A method cannot run as asked (unknown name, bad parameter, missing model)."""
