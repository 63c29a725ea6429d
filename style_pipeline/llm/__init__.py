"""The LLM side: SFT dataset building, adapter training with TRL + PEFT, evaluation."""
