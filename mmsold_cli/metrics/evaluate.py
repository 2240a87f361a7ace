"""One entry point for every metric of a set of samples: distribution metrics, and surface metrics for 3-D clouds."""

from __future__ import annotations

from ..errors import MmsoldError

__all__ = ["evaluate_all"]


def evaluate_all(samples, reference, *, train=None, model=None, mesh=None, distances=False,
                 random_state=0, seeded_only=False, spacing=None) -> tuple[dict, object]:
    """Metrics of samples (n, d) against reference points, and per-sample surface distances when a mesh is given.

    Every sample set gets :func:`mmsold_cli.metrics.points.evaluate` (moments, W2, MMD², precision/recall,
    memorisation against ``train`` points or a ``model``); 3-D clouds also get
    :func:`mmsold_cli.metrics.surface.evaluate_cloud` (Chamfer, Hausdorff on the reference's unit sphere;
    with ``mesh = (vertices, faces)`` the exact distance to the surface and the share of the surface covered,
    ``surface_coverage``, at a radius of half the training spacing) and PU-GAN's uniformity :math:`U(p)`
    (:func:`mmsold_cli.metrics.uniformity.uniformity`, ``uniformity_0.4%`` … ``uniformity_1.2%``, lower is
    more even) with the surface area of the mesh, or else estimated from the reference (``uniformity_area``).

    ``seeded_only``: only the figures that depend on ``random_state`` (repeats over seeds; see
    :func:`mmsold_cli.metrics.points.evaluate`, and the mesh's coverage), with ``spacing`` the first run's.

    Returns
    -------
    (metrics, distances) : dict, and with ``distances`` and a mesh an array of shape (n,) (each sample's
    distance to the mesh / spacing, e.g. to colour a plot), else None
    """
    from .points import evaluate

    if reference.shape[1] != samples.shape[1]:
        raise MmsoldError(f"reference dimension {reference.shape[1]} differs from the samples' {samples.shape[1]}")
    if mesh is not None and samples.shape[1] != 3:
        raise MmsoldError(f"a mesh needs 3-D points; the samples are {samples.shape[1]}-D")
    res = evaluate(samples, reference, train=train, model=model, random_state=random_state, seeded_only=seeded_only)
    dist = None
    if samples.shape[1] == 3:
        from .surface import evaluate_cloud, mean_spacing, point_to_mesh

        if spacing is None:
            spacing = model.spacing_ if model is not None else mean_spacing(train) if train is not None else None
        cloud = evaluate_cloud(samples, reference, mesh=mesh, spacing=spacing, random_state=random_state,
                               seeded_only=seeded_only)
        if "coverage" in cloud:  # the mesh's share covered; "coverage" is already the reference's (density/coverage)
            cloud["surface_coverage"] = cloud.pop("coverage")
        res.update(cloud)
        if len(samples) >= 10 and len(reference) >= 2 and not seeded_only:  # U(p) takes its own fixed seeds
            from .uniformity import UNIFORMITY_SEEDS, cloud_area, mesh_area, uniformity

            # the area from the mesh, else from the reference (independent uniform points on the surface give
            # an unbiased estimate), never from the samples: an evenly spread set would inflate its own
            area = mesh_area(*mesh) if mesh is not None else cloud_area(reference)
            res.update(uniformity(samples, area=area, seeds=UNIFORMITY_SEEDS))
            res["uniformity_area"] = area
        if mesh is not None and distances:
            dist = point_to_mesh(samples, *mesh) / res["spacing"]
    return res, dist
