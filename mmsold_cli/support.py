r"""Sampling a singular data set in the coordinates of its support.

When the data covariance is singular above ``SUPPORT_ABOVE`` dimensions the
ensembles are held on its support, :math:`Z = \mathbf 1\mu^\top + Y L^\top`
with :math:`L = U_r\Lambda_r^{1/2}` of shape (d, r)
(:func:`mmsold_cli.sampling.support_factor`).  Every particle, and every
training point, then lies in the affine subspace :math:`\mu + \operatorname{span} U_r`,
and :math:`w = U_r^\top (z - \mu)` is an isometry of it onto
:math:`\mathbb R^r`: distances, hence the smoothed score's weights, are the
same in w as in z.  So a run can be made entirely in w, on the training
points :math:`W_X = (X - \mu)\,U_r`, with the diagonal factor
:math:`\Lambda_r^{1/2}`:

.. math::

    w = Y \Lambda_r^{1/2}, \qquad G = s_w \Lambda_r^{1/2}, \qquad z = \mu + w\,U_r^\top \text{ (once, at the end)}

Per step this removes the two (P × r)·(r × d) products of the positions and
the pull-back, and the score's distances cost r instead of d coordinates.
The law sampled is the same: a draw u ~ N(0, σ² I_d) changes all squared
distances from a point z of the support by the same :math:`\|u_\perp\|^2` across
it, which cancels in the softmax, and its part along the support is
N(0, σ² I_r).  The random numbers differ (r normals a draw instead of d), so a
seed's samples differ from those of a run in data coordinates.

The training points' own residual across the support (eigenvalues under
``FLAT`` × λmax, e.g. MNIST's 7 nearly-null pixel combinations) is dropped,
which changes a squared distance by at most that residual: below the float32
rounding of the rows the walk reads.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SupportView", "support_view"]


class SupportView:
    """A fitted model seen in the coordinates of its support: what a score and a run read from a model.

    Attributes
    ----------
    mean_ : array of shape (d,)
    basis_ : array of shape (d, r), :math:`U_r` (a constant column's row is zero)
    scale_ : array of shape (r,), :math:`\\Lambda_r^{1/2}`
    X_ : array of shape (n, r), :math:`(X - \\mu) U_r`
    knn_idx_, knn_sqdist_, index_ : the model's (graph distances are the same in these coordinates;
        the index answers queries in data coordinates, so only searches that do not query it use a view)
    """

    def __init__(self, model, factor):
        self.mean_ = model.mean_
        self.scale_ = np.sqrt(np.einsum("dr,dr->r", factor, factor))
        self.basis_ = factor / self.scale_
        self.X_ = (model.X_ - model.mean_) @ self.basis_
        self.d_ = self.X_.shape[1]
        self.knn_idx_ = getattr(model, "knn_idx_", None)
        self.knn_sqdist_ = getattr(model, "knn_sqdist_", None)
        self.index_ = None
        graph = model.__dict__.get("_walk_graph")
        if graph is not None:  # the same graph: made from the model's, no need to rebuild
            self.__dict__["_walk_graph"] = graph

    def target(self):
        """The moments of a run in these coordinates: mean 0, covariance Λ_r, the diagonal factor Λ_r^(1/2)."""
        from .samplers import Target

        return Target(np.zeros(self.d_), np.diag(self.scale_ ** 2), self.scale_)

    def to_data(self, W: np.ndarray) -> np.ndarray:
        """:math:`z = \\mu + w\\,U_r^\\top` for rows w of shape (..., r)."""
        Z = W @ self.basis_.T
        Z += self.mean_
        return Z


def support_view(model, factor) -> SupportView:
    """The model's :class:`SupportView` for the support factor ``factor``, made once and kept on the model."""
    view = model.__dict__.get("_support_view")
    if view is None:
        view = model.__dict__["_support_view"] = SupportView(model, factor)
    return view
