package upload

import qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"

// Result is what the output endpoint persisted from one pod of a run. The
// endpoint records it in the QuarksJob's status (status.lastRun.uploads),
// where only the controller writes, and the controller reads it there when
// the run's Job finishes.
type Result = qjv1.OutputUpload
