"""HunyuanVideo (PPDiffusers' HunyuanVideoTransformer3DModel): dual-stream blocks, then single-stream blocks, as in
FLUX, but every block takes and returns (hidden_states, encoder_hidden_states) with the video stream first, and a
single block concatenates [video; text] inside itself. The forward's `timestep` is on the 0..1000 scale."""
import paddle

from .flux import FluxAdapter
from .paired_streams import PairedStreamsIO


class HunyuanVideoAdapter(PairedStreamsIO, FluxAdapter):
    family = "hunyuan_video"
    timestep_scale = 1.0

    @classmethod
    def matches(cls, transformer):
        return type(transformer).__name__.startswith("HunyuanVideoTransformer3D") and FluxAdapter.matches(transformer)

    def begin_call(self, args, kwargs):
        """Every block takes the streams separately: there is no concatenated stream to split."""

    def pass_through(self, block, io):
        return self.make_output(block, io.streams)

    def modulated_input(self, block, io):
        if self.is_single(block):
            return block.norm(paddle.concat([io.streams[0], io.streams[1]], axis=1), emb=io.temb)[0]
        return block.norm1(io.streams[0], emb=io.temb)[0]
