"""GANPrompt and its ablations as registered methods (named configurations of one implementation)."""
from methods.ganprompt.method import GANPrompt, GANPromptParams


class _Ablation(GANPrompt):
    fixed: dict = {}

    def __init__(self, **params):
        clash = sorted(k for k in set(params) & set(self.fixed) if params[k] != self.fixed[k])
        if clash:
            from bench.errors import MethodError
            raise MethodError(f"method {self.name}: {', '.join(clash)} is fixed by this ablation")
        super().__init__(**{**self.fixed, **params})


class GANPromptNoAttributes(_Ablation):
    name = "ganprompt-noattr"
    description = "GANPrompt ablation: no attributes (no variants, no discriminator; diversity across the batch)"
    fixed = {"use_attributes": False, "diversity_scope": "batch"}


class GANPromptNoGAN(_Ablation):
    name = "ganprompt-nogan"
    description = "GANPrompt ablation: no GAN (L_adv off, no discriminator)"
    fixed = {"adversarial": "off"}


class GANPromptNoDiversity(_Ablation):
    name = "ganprompt-nodiv"
    description = "GANPrompt ablation: no diversity constraint (lambda = 0)"
    fixed = {"lambda_div": 0.0}


class GANPromptPlain(_Ablation):
    name = "ganprompt-plain"
    kind = "llm"
    description = "GANPrompt ablation: plain LoRA fine-tuning of the same LM, no diversity encoder (TALLRec-like)"
    fixed = {"backbone": "plain"}


ALL = (GANPrompt, GANPromptNoAttributes, GANPromptNoGAN, GANPromptNoDiversity, GANPromptPlain)
__all__ = ["ALL", "GANPrompt", "GANPromptParams"]
