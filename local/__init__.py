"""Local mode: the real handlers, AWS emulated by moto, and a clock that fires rules on time."""
