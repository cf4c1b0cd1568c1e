"""nct-md: neural canonical transformations for molecular dynamics.

A symplectic flow maps MD phase space ``(p, q)`` to independent harmonic oscillators with learned
frequencies; the latent positions of the lowest frequencies are the slow collective variables
(trained to be kinetically slow, too, where the data are trajectories: :mod:`nct_md.train.kinetic`).
Units everywhere: nm, ps, amu, kJ/mol, K. ``docs/architecture.md`` in the repository describes
the parts, the data path and the file contracts.

Reading data (:mod:`nct_md.md`)
    :func:`nct_md.md.phase.load_phase_space`, :func:`~nct_md.md.phase.iter_phase_space`,
    :func:`~nct_md.md.phase.from_trajectories` -> :class:`nct_md.md.data.PhaseSpaceData`;
    :func:`nct_md.md.io.load` / :func:`~nct_md.md.io.iterload` (:class:`~nct_md.md.chunk.Chunk`
    records); :class:`nct_md.md.frame.EckartFrame`; :func:`nct_md.md.simulate.simulate`;
    :func:`nct_md.md.reweight.metad_log_weights` (weights of biased frames).
Fitting (:mod:`nct_md.estimator`, :mod:`nct_md.train`)
    :class:`nct_md.estimator.NCT` (``fit(data)``, ``fetch_model()``; defaults in
    :mod:`nct_md.defaults`);
    :func:`nct_md.train.files.train_files` (files in, model file out);
    :class:`nct_md.train.Trainer`.
The model (:mod:`nct_md.model`)
    :class:`~nct_md.model.NCTModel` (``transform``, ``cvs``, ``encode``/``decode``, ``log_prob``,
    ``save``/``load``), :class:`~nct_md.model_info.ModelInfo`; layers in :mod:`nct_md.flows`,
    :class:`nct_md.latent.HarmonicLatent`.
Using a fitted model
    :func:`nct_md.cv.extract.extract_cvs`, :func:`nct_md.cv.report_files.write_report`,
    :mod:`nct_md.cv.ood` (frames the model never learned);
    :mod:`nct_md.export` (TorchScript for PLUMED, OpenMM CV forces, metadynamics);
    :mod:`nct_md.generate` (OpenMM energies, Boltzmann-generator training, sampling, weights);
    :mod:`nct_md.viz` (latent interpolation, nglview, HTML, plots).
Ready-made systems (:mod:`nct_md.systems`), the end-to-end demo (:func:`nct_md.demo.run_demo`)
    and the ``nct-md`` command (:mod:`nct_md.cli`), whose commands each call one of the functions
    above.
"""

__version__ = "0.1.0"
