"""Assets of the llm group: aligned_pairs, sft_dataset, llm_adapter, llm_eval,
promoted_llm_adapter."""
