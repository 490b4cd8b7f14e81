"""Batched decoding over a static KV cache, its decode step compiled and replayed as a CUDA graph.

After gpt-fast (PyTorch, 2023): at GPT-2 small's size a decode step reads 250 MB of weights, about
0.1 ms on an H100, while launching its ~200 kernels one by one from Python takes milliseconds. So
the prompt is prefilled once (eagerly: its length varies), and the one-token step, whose shapes
never change, is compiled with torch.compile and captured as a CUDA graph: each further token is
one `graph.replay()`. The step reads its input token and slot from device buffers and writes the
next ones back, so the host only queues replays; it waits on the device only every `check_every`
tokens, to stop early once every row has produced <|endoftext|>.

Picking a token: greedy is `argmax`; sampling draws Exp(1) noise q over the vocabulary and takes
argmax(p / q), which picks token i with probability p_i. On the CPU the noise comes from the
caller's generator, with exactly the draws `torch.multinomial(p, 1)` makes, so the CPU static path
samples what today's path samples; on CUDA it comes from a CUDA generator seeded from the caller's
(reproducible for a seed on one device, not equal to the CPU's draws).

`StaticDecoder(model, batch, length)` is built once and reused (its graph stays valid while the
model's parameters stay where they are: optimizer steps update them in place).
"""

from __future__ import annotations

import torch

from model.kv_cache import StaticKVCache
from model.sampling import draw, filter_logits


class StaticDecoder:
    """Generation for `batch` rows whose prompt + new tokens fit `length` cache slots."""

    def __init__(
        self,
        model: torch.nn.Module,
        batch: int,
        length: int,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        compile: bool | None = None,
        graph: bool | None = None,
    ):
        weight = model.lm_head.weight
        self.model, self.device = model, weight.device
        cuda = self.device.type == "cuda"
        self.compile = cuda if compile is None else compile
        self.use_graph = cuda if graph is None else graph
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.cache = StaticKVCache.for_model(model, batch, length)
        self.batch, self.length = batch, length
        # the step's device-side state: the token fed next, its slot, the column of `out` it fills
        self.token = torch.zeros(batch, 1, dtype=torch.long, device=self.device)
        self.slot = torch.zeros((), dtype=torch.long, device=self.device)
        self.column = torch.zeros(1, dtype=torch.long, device=self.device)
        self.out = torch.zeros(batch, length, dtype=torch.long, device=self.device)
        self.noise = torch.ones(batch, model.config.vocab_size, device=self.device) if temperature > 0 else None
        self._next = torch.compile(self._next_token, fullgraph=True) if self.compile else self._next_token
        self.graph = None

    # ------------------------------------------------------------------ the step

    def _next_token(self) -> torch.Tensor:
        """Feed `token` at `slot`, return the next token of every row (B,)."""
        logits, _ = self.model(self.token, caches=self.cache, start=self.slot)
        return self._pick(logits[:, -1, :])

    def _pick(self, logits: torch.Tensor) -> torch.Tensor:
        if self.noise is None:
            return logits.argmax(-1)
        return draw(filter_logits(logits, self.temperature, self.top_k, self.top_p), self.noise)

    def _advance(self) -> None:
        """One decode step, device-side only: what the CUDA graph holds."""
        nxt = self._next()
        self.out.index_copy_(1, self.column, nxt[:, None])
        self.token.copy_(nxt[:, None])
        self.slot.add_(1)
        self.column.add_(1)

    def _capture(self) -> None:
        """Compile (first calls) and capture the step; warm-up writes land in slots that every
        generation overwrites before it reads them."""
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(3):
                self._advance()
        torch.cuda.current_stream(self.device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._advance()

    # ------------------------------------------------------------------ generation

    @torch.no_grad()
    def generate(
        self,
        prompts: torch.Tensor,
        pad: torch.Tensor,
        max_new_tokens: int,
        eot_id: int | None = None,
        generator: torch.Generator | None = None,
        check_every: int = 32,
    ) -> torch.Tensor:
        """prompts (B, P) left-padded token ids, pad (B,) each row's padding -> (B, n) new tokens,
        n <= max_new_tokens (fewer when every row has produced eot_id; rows end at their own eot)."""
        B, P = prompts.shape
        if B != self.batch or P + max_new_tokens - 1 > self.length:
            raise ValueError(
                f"{B} rows of {P} + {max_new_tokens} tokens do not fit this decoder "
                f"({self.batch} rows, {self.length} slots)"
            )
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.autocast(self.device.type, enabled=False):  # the cache holds the weights' dtype
                return self._generate(
                    prompts.to(self.device), pad.to(self.device), max_new_tokens, eot_id, generator, check_every
                )
        finally:
            self.model.train(was_training)

    def _generate(self, prompts, pad, max_new_tokens, eot_id, generator, check_every) -> torch.Tensor:
        if self.use_graph and self.graph is None:
            self._capture()
        self.cache.pad.copy_(pad)
        logits, _ = self.model(prompts, caches=self.cache, start=0)  # prefill: slots 0 .. P-1
        self._draw_noise(generator)
        first = self._pick(logits[:, -1, :])
        self.out[:, 0] = first
        self.token.copy_(first[:, None])
        self.slot.fill_(prompts.size(1))
        self.column.fill_(1)
        done = 1
        while done < max_new_tokens:
            self._draw_noise(generator)
            if self.graph is not None:
                self.graph.replay()
            else:
                self._advance()
            done += 1
            if eot_id is not None and done % check_every == 0 and self._all_ended(done, eot_id):
                break
        return self.out[:, :done]

    def _draw_noise(self, generator: torch.Generator | None) -> None:
        if self.noise is not None:
            self.noise.exponential_(1, generator=generator)

    def _all_ended(self, done: int, eot_id: int) -> bool:
        """Has every row produced eot_id? (a host sync, once every check_every tokens)"""
        return bool((self.out[:, :done] == eot_id).any(dim=1).all())


def left_pad(prompts: list[list[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id lists -> (B, P) ids, right-aligned, and (B,) the padding of each row."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if prompt:
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
    return ids, torch.tensor([width - len(p) for p in prompts], dtype=torch.long)
