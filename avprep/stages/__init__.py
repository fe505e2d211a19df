"""Per-clip processing stages: download, extract (frames, audio, spectrogram, flow), ingest.

Contract (:mod:`avprep.stage`): a stage is a per-clip function
``step(clip, config) -> ClipRecord`` (module level, picklable; an expected
failure is a failed record, not an exception) plus a :class:`avprep.stage.Stage`
declaration; :func:`avprep.stage.run_stage` owns the folder lock, the sweep of
temporaries, the manifest header and parameter check, skip-if-done
(:func:`avprep.manifest.is_done`), the map over clips and the report. A clip
is one :class:`avprep.clip.Clip` record from the recipe's row to the video.
"""
