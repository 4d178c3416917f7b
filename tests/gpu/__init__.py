"""GPU proofs and the helpers they share (run on the device machine; skipped elsewhere)."""


def cuda() -> bool:
    """Whether torch is importable and sees a CUDA GPU."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def proof_marks(checkout: str) -> list:
    """The marks of a GPU proof of the trainer whose checkout ``checkout`` (an environment
    variable) names: run only with ``LORAC_GPU_PROOF=1``, that checkout and a CUDA GPU."""
    import os

    import pytest

    return [pytest.mark.gpu,
            pytest.mark.skipif(os.environ.get("LORAC_GPU_PROOF") != "1" or not cuda()
                               or not os.environ.get(checkout),
                               reason=f"set LORAC_GPU_PROOF=1 and {checkout} on a CUDA machine")]
