"""Block I/O for families whose every block takes and returns (hidden_states, encoder_hidden_states), the image or
video stream first (HunyuanVideo, CogVideoX)."""
from .base import BlockIO, call_arguments


class PairedStreamsIO:
    """Mixin: read the two streams and `temb` by name, return them as the same pair."""

    def read_inputs(self, block, args, kwargs):
        bound = call_arguments(block, args, kwargs)
        return BlockIO((bound["hidden_states"], bound["encoder_hidden_states"]), bound["temb"])

    def read_outputs(self, block, output):
        return tuple(output)

    def make_output(self, block, streams):
        return streams[0], streams[1]
