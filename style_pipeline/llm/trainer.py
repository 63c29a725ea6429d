"""LoRA SFT of a causal LM with TRL's ``SFTTrainer`` and PEFT, on chat-format examples.

Each SFT example (``{"messages": [...]}``) becomes TRL's conversational prompt-completion
form: every turn before the last assistant message is the prompt, that message the
completion. The trainer applies the model's chat template and computes the loss on the
completion only. On CPU a run is deterministic: seeded (model, LoRA init, data order),
``use_cpu``, no dataloader workers; two runs give byte-identical
``adapter_model.safetensors`` (TRL's ``full_determinism`` is left off: it switches
``torch.use_deterministic_algorithms`` on for the whole process, and CPU kernels are
deterministic already; on CUDA the result may differ in the last bits).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from style_pipeline.contracts.llm import LlmTrainingConfig

log = logging.getLogger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
# (step, loss) of one logged optimisation step
StepCallback = Callable[[int, float], None]


class NotTrainable(ValueError):
    """The examples cannot train an adapter (none usable); the message says why."""


@dataclass(frozen=True)
class TrainedAdapter:
    """A trained adapter saved in ``folder`` and how the run went."""

    folder: Path
    steps: int
    losses: list[tuple[int, float]]
    seconds: float
    device: str


def prompt_completion(example: dict[str, Any]) -> dict[str, list[dict[str, str]]] | None:
    """``{"messages": [...]}`` -> ``{"prompt": [...], "completion": [last assistant]}``.

    None when the example has no assistant message after a non-empty prompt."""
    messages = [
        {"role": str(m.get("role", "")), "content": str(m.get("content", ""))}
        for m in example.get("messages") or []
        if isinstance(m, dict)
    ]
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    if last < 1 or not messages[last]["content"].strip():
        return None
    return {"prompt": messages[:last], "completion": [messages[last]]}


def sft_config(config: LlmTrainingConfig, output_dir: Path, device: str) -> Any:
    """The ``trl.SFTConfig`` of a run (no checkpoints, no reporting, one log per step)."""
    from trl import SFTConfig

    on_cpu = device == "cpu"
    if config.precision == "fp16" and on_cpu:
        raise ValueError("llm.training.precision fp16 needs CUDA; use bf16 or fp32 on CPU")
    return SFTConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_steps,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps or -1,
        max_length=config.max_length,
        bf16=config.precision == "bf16",
        fp16=config.precision == "fp16",
        activation_checkpointing=config.gradient_checkpointing,  # transformers 5: the new name
        packing=False,
        completion_only_loss=True,
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=on_cpu,
        dataloader_num_workers=0,
        seed=config.seed,
        data_seed=config.seed,
    )


def train_adapter(
    model_path: Path,
    examples: Sequence[dict[str, Any]],
    config: LlmTrainingConfig,
    out_dir: Path,
    *,
    base_model_id: str,
    on_step: StepCallback | None = None,
    device: str | None = None,
) -> TrainedAdapter:
    """Train a LoRA on ``examples`` over the model at ``model_path``; save it in ``out_dir``.

    ``base_model_id`` is written into ``adapter_config.json`` (instead of the local path,
    which differs between machines). ``on_step`` sees every optimisation step's loss.
    """
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        PrinterCallback,
        TrainerCallback,
        set_seed,
    )
    from trl import SFTTrainer

    rows = [row for row in map(prompt_completion, examples) if row is not None]
    if not rows:
        raise NotTrainable(f"none of {len(examples)} examples has a prompt and an answer")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    started = time.perf_counter()
    set_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        str(model_path), local_files_only=True, dtype=torch.float32
    )
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        task_type="CAUSAL_LM",
    )
    losses: list[tuple[int, float]] = []

    class _Losses(TrainerCallback):  # type: ignore[misc]
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            if logs and "loss" in logs:
                step, loss = int(state.global_step), float(logs["loss"])
                losses.append((step, loss))
                if on_step is not None:
                    on_step(step, loss)

    work = out_dir / ".trainer"
    trainer = SFTTrainer(
        model=model,
        args=sft_config(config, work, device),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[_Losses()],
    )
    trainer.remove_callback(PrinterCallback)  # steps reach ``on_step``, not stdout
    trainer.train()
    trained: Any = trainer.model  # the PeftModel SFTTrainer wrapped around the base model
    trained.save_pretrained(str(out_dir), safe_serialization=True)
    (out_dir / "README.md").unlink(missing_ok=True)  # PEFT's model card stub
    _set_base_model(out_dir / ADAPTER_CONFIG, base_model_id)
    if work.exists():
        import shutil

        shutil.rmtree(work)
    return TrainedAdapter(
        folder=out_dir,
        steps=int(trainer.state.global_step),
        losses=losses,
        seconds=round(time.perf_counter() - started, 3),
        device=device,
    )


def _set_base_model(path: Path, model_id: str) -> None:
    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = model_id
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
