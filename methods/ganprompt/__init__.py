"""GANPrompt and its ablations as registered methods (named configurations of one implementation)."""
from bench.method import FixedParams
from methods.ganprompt.method import GANPrompt, GANPromptParams


class _Ablation(FixedParams, GANPrompt):
    pass


class GANPromptNoAttributes(_Ablation):
    name = "ganprompt-noattr"
    description = "GANPrompt ablation: no attributes (no variants, so no discriminator and no diversity term)"
    fixed = {"use_attributes": False}


class GANPromptNoGAN(_Ablation):
    name = "ganprompt-nogan"
    description = "GANPrompt ablation: no GAN (L_adv off, no discriminator)"
    fixed = {"adversarial": "off"}


class GANPromptNoDiversity(_Ablation):
    name = "ganprompt-nodiv"
    description = "GANPrompt ablation: no diversity constraint (lambda = 0)"
    fixed = {"lambda_div": 0.0}


class GANPromptPlain(_Ablation):
    """A control, not an ablation: it removes five components at once (encoder, projection, attributes, D, L_div)."""
    name = "ganprompt-plain"
    kind = "control"
    description = ("GANPrompt control (not a one-component ablation): plain LoRA fine-tuning of the same LM on the same "
                   "prompts, without diversity encoder, attributes, discriminator or diversity term")
    fixed = {"backbone": "plain"}


ALL = (GANPrompt, GANPromptNoAttributes, GANPromptNoGAN, GANPromptNoDiversity, GANPromptPlain)
__all__ = ["ALL", "GANPrompt", "GANPromptParams"]
