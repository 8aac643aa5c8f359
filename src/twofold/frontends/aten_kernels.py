"""Which ATen kernels are which twofold operator kinds (names as `str(func.overloadpacket)`).

Kernels not listed here and without PyTorch's `pointwise` tag are reported as unsupported.
"""

from __future__ import annotations

__all__ = [
    "ATTENTION",
    "ATTENTION_BACKWARD",
    "CONV",
    "DTYPE_NAMES",
    "EMBEDDING",
    "FREE",
    "GEMM",
    "LOSS",
    "MEMORY",
    "NORM",
    "SOFTMAX",
]

GEMM = {"aten.mm", "aten.addmm", "aten.bmm", "aten.baddbmm", "aten._scaled_mm"}
CONV = {
    "aten.convolution",
    "aten._convolution",
    "aten.convolution_overrideable",
    "aten.cudnn_convolution",
    "aten.cudnn_convolution_transpose",
    "aten.mkldnn_convolution",
    "aten._slow_conv2d_forward",
}
ATTENTION = {
    "aten._scaled_dot_product_flash_attention_for_cpu",
    "aten._scaled_dot_product_flash_attention",
    "aten._scaled_dot_product_efficient_attention",
    "aten._scaled_dot_product_cudnn_attention",
    "aten._scaled_dot_product_fused_attention_overrideable",
}
ATTENTION_BACKWARD = {f"{name}_backward" for name in ATTENTION}
NORM = {
    f"aten.{n}"
    for n in (
        "native_layer_norm",
        "native_layer_norm_backward",
        "native_group_norm",
        "native_group_norm_backward",
        "native_batch_norm",
        "native_batch_norm_backward",
        "_native_batch_norm_legit",
        "_native_batch_norm_legit_no_training",
        "_native_batch_norm_legit_functional",
        "_batch_norm_with_update",
        "_batch_norm_no_update",
        "batch_norm_backward",
        "cudnn_batch_norm",
        "cudnn_batch_norm_backward",
        "_fused_rms_norm",
        "_fused_rms_norm_backward",
    )
}
SOFTMAX = {
    f"aten.{n}"
    for n in (
        "_softmax",
        "_log_softmax",
        "_safe_softmax",
        "_softmax_backward_data",
        "_log_softmax_backward_data",
    )
}
EMBEDDING = {"aten.embedding", "aten.embedding_dense_backward", "aten._embedding_bag"}
LOSS = {
    f"aten.{n}"
    for n in (
        "nll_loss_forward",
        "nll_loss_backward",
        "nll_loss2d_forward",
        "nll_loss2d_backward",
        "mse_loss",
        "mse_loss_backward",
        "binary_cross_entropy",
        "binary_cross_entropy_backward",
        "binary_cross_entropy_with_logits",
        "smooth_l1_loss",
        "smooth_l1_loss_backward",
        "huber_loss",
        "huber_loss_backward",
    )
}
# Memory-bound kernels without the `pointwise` tag: reductions, copies, indexing, factories,
# pooling, dropout. (Every `pointwise`-tagged ATen op is elementwise too.)
MEMORY = {
    f"aten.{n}"
    for n in (
        "sum amax amin max min mean var var_mean std std_mean prod argmax argmin any all cumsum "
        "cumprod logsumexp norm linalg_vector_norm topk sort clone copy copy_ _to_copy cat stack "
        "index index_select gather scatter scatter_add scatter_reduce index_put index_put_ "
        "_index_put_impl_ index_add _unsafe_index _unsafe_index_put masked_scatter constant_pad_nd "
        "repeat flip roll tril triu zeros ones full zeros_like ones_like full_like arange "
        "scalar_tensor new_zeros new_ones new_full fill fill_ zero_ rand rand_like randn randn_like "
        "bernoulli bernoulli_ native_dropout native_dropout_backward max_pool2d_with_indices "
        "max_pool2d_with_indices_backward max_pool3d_with_indices avg_pool2d avg_pool2d_backward "
        "avg_pool3d _adaptive_avg_pool2d _adaptive_avg_pool2d_backward adaptive_max_pool2d "
        "upsample_nearest2d upsample_bilinear2d upsample_nearest2d_backward "
        "upsample_bilinear2d_backward _pdist_forward split_with_sizes_copy slice_scatter "
        "select_scatter select_backward slice_backward masked_fill masked_fill_ where"
    ).split()
}
# No kernel worth pricing: allocation without initialisation, metadata, host reads of a scalar.
FREE = {
    f"aten.{n}"
    for n in (
        "empty empty_like empty_strided new_empty new_empty_strided resize_ set_ lift_fresh "
        "_unsafe_view _local_scalar_dense is_nonzero equal _assert_async _assert_tensor_metadata "
        "sym_constrain_range_for_size _functional_assert_async size sym_size stride sym_stride dim "
        "numel sym_numel is_contiguous storage_offset sym_storage_offset"
    ).split()
} | {"prim.layout", "prim.device"}
DTYPE_NAMES = {
    "float32": "fp32",
    "bfloat16": "bf16",
    "float16": "fp16",
    "float64": "fp64",
    "float8_e4m3fn": "fp8",
    "float8_e5m2": "fp8",
}
