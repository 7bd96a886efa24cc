"""Tiny settings for the yes/no LM methods (random 2-layer models, a handful of prompts): seconds per fit."""
TINY_LM = dict(lm="tiny-causal", train_groups=6, negatives=2, batch_groups=3, valid_users=3, valid_negatives=4,
               history_len=4, title_words=5, max_length=64, max_tokens=512)
TINY_GAN = dict(TINY_LM, encoder="tiny-encoder", t5="tiny-t5", attribute_generator="tiny-causal", attribute_samples=8,
                stage1_batch=2, proj_hidden=16, d_hidden=16, n_attributes=3)
