"""What every model adapter tells the engine: block lists, block inputs/outputs, indicator inputs, costs."""
import inspect


class BlockIO:
    """Streams of one block call: `image` [B, Li, C], then `text` [B, Lt, C] for blocks that update a text stream
    (FLUX, SD3, HunyuanVideo, CogVideoX). Blocks that only read the text as cross-attention context (PixArt,
    Wan2.1) have the one stream (image,). A block that takes one concatenated [text; image] tensor (PPDiffusers'
    FLUX single blocks) keeps it as `joint`; its streams are the image and text parts of it, so every policy sees
    the same streams whatever the block's calling convention. Video tokens are the flattened frame x patch
    sequence, so a video block is cached exactly as an image block."""

    __slots__ = ("streams", "temb", "joint")

    def __init__(self, streams, temb, joint=None):
        self.streams = streams  # tuple of tensors (None allowed), fixed order per block kind
        self.temb = temb
        self.joint = joint


class Adapter:
    family = "base"
    block_list_names = ()
    timestep_scale = 1.0  # multiply the forward's `timestep` by this to get the 0..1000 scale

    def __init__(self, transformer):
        self.transformer = transformer

    @classmethod
    def matches(cls, transformer):
        raise NotImplementedError

    def block_lists(self):
        return [(name, getattr(self.transformer, name)) for name in self.block_list_names
                if getattr(self.transformer, name, None) is not None]

    def block_slots(self):
        """(container, key, block) for every cached block in execution order; key is a LayerList index or an
        attribute name (for a single block held as an attribute, e.g. a UNet's mid block)."""
        return [(layers, position, layers[position]) for _, layers in self.block_lists()
                for position in range(len(layers))]

    def identity(self):
        """What a per-model calibration (MagCache's curve) is checked against: the family, the number of cached
        blocks and their parameter count (the architecture, from shapes; not the weights)."""
        slots = self.block_slots()
        parameters = sum(int(p.numel()) for _, _, block in slots for p in block.parameters())
        return {"family": self.family, "blocks": len(slots), "block_parameters": parameters}

    # --- per block kind ---
    def read_inputs(self, block, args, kwargs):
        """BlockIO of a block call."""
        raise NotImplementedError

    def read_outputs(self, block, output):
        """Output streams, in the same order as the inputs' streams."""
        raise NotImplementedError

    def make_output(self, block, streams):
        """The block's return value built from output streams."""
        raise NotImplementedError

    def pass_through(self, block, io):
        """The block's return value when it is skipped inside a predicted span: its inputs, unchanged."""
        return self.make_output(block, io.streams)

    def modulated_input(self, block, io):
        """adaLN-Zero modulated input of the block (image stream for joint blocks), for TeaCache-style indicators."""
        raise NotImplementedError

    def indicator_stream(self, block, streams):
        """The stream whose residual ranks or gates the block (the image stream for two-stream blocks)."""
        return streams[0]

    def components(self, block):
        """Names of the block's cacheable sublayers (their outputs are taken before the adaLN gate)."""
        return ()

    def attention_components(self, block):
        """The components that are attention layers (PAB and T-GATE reuse these)."""
        return tuple(name for name in self.components(block) if name.startswith("attn"))

    def component_macs(self, block, io):
        """{component: multiply-accumulates} of one call, from shapes only (no device sync)."""
        shapes = [s.shape for s in io.streams if s is not None]
        batch, dim = shapes[0][0], shapes[0][-1]
        tokens = sum(s[1] for s in shapes)
        return {"block": batch * (12 * tokens * dim * dim + 2 * tokens * tokens * dim)}

    def block_macs(self, block, io):
        return sum(self.component_macs(block, io).values())

    # --- per transformer call ---
    def begin_call(self, args, kwargs):
        """Called with the transformer's arguments before its blocks run."""

    def timestep_of_call(self, args, kwargs):
        """Host float on the 0..1000 scale (one device read)."""
        t = call_arguments(self.transformer, args, kwargs).get("timestep")
        if t is None:
            return None
        value = t.reshape([-1])[0] if hasattr(t, "reshape") else t
        return float(value) * self.timestep_scale


_PARAMETER_NAMES = {}


def parameter_names(cls):
    """Names of `cls.forward`'s parameters after self (cached per class: this runs for every block call)."""
    names = _PARAMETER_NAMES.get(cls)
    if names is None:
        names = _PARAMETER_NAMES[cls] = tuple(inspect.signature(cls.forward).parameters)[1:]
    return names


def joint_block_macs(io, has_text_mlp=True):
    """Two-stream joint block (FLUX double, SD3): attention projections on both streams, joint attention,
    an MLP per stream."""
    image, text = io.streams[0], io.streams[1]
    batch, image_tokens, dim = image.shape
    text_tokens = text.shape[1]
    tokens = image_tokens + text_tokens
    macs = {"attn": batch * (4 * tokens * dim * dim + 2 * tokens * tokens * dim),
            "ff": batch * 8 * image_tokens * dim * dim}
    if has_text_mlp:
        macs["ff_context"] = batch * 8 * text_tokens * dim * dim
    return macs


def modulate(normed, shift, scale):
    """adaLN modulation x * (1 + scale) + shift."""
    return normed * (1 + scale) + shift


def call_arguments(block, args, kwargs):
    """A block's call arguments by name."""
    if not args:
        return kwargs
    bound = dict(zip(parameter_names(type(block)), args))
    bound.update(kwargs)
    return bound


_KV_PROJECTIONS = ("to_k", "to_v", "add_k_proj", "add_v_proj")
_WEIGHT_SIZES = {}


def _weight_sizes(layer):
    """(query-side, key/value-side) summed Linear weight sizes of a sublayer, cached per layer."""
    sizes = _WEIGHT_SIZES.get(id(layer))
    if sizes is None:
        query_side = kv_side = 0
        for name, sub in layer.named_sublayers(include_self=True):
            weight = getattr(sub, "weight", None)
            if type(sub).__name__ != "Linear" or weight is None:
                continue
            size = int(weight.shape[0]) * int(weight.shape[1])
            if name.split(".")[-1] in _KV_PROJECTIONS:
                kv_side += size
            else:
                query_side += size
        sizes = _WEIGHT_SIZES[id(layer)] = (query_side, kv_side)
    return sizes


def layer_macs(layer, batch, tokens, kv_tokens=None, heads_dim=None):
    """Multiply-accumulates of one call of `layer` from its Linear weights: projections on `tokens` queries, key
    and value projections on `kv_tokens` (self-attention: the same tokens), plus QK^T and AV when `heads_dim`
    (the attention's inner width) is given. Norms and activations are left out."""
    kv_tokens = tokens if kv_tokens is None else kv_tokens
    query_side, kv_side = _weight_sizes(layer)
    macs = tokens * query_side + kv_tokens * kv_side
    if heads_dim:
        macs += 2 * tokens * kv_tokens * heads_dim
    return batch * macs


def attention_width(attention):
    return int(attention.to_q.weight.shape[1])
