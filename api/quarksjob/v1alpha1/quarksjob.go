package v1alpha1

import "sort"

// IsAutoErrand reports whether the QuarksJob is a one-off (once or done).
func (q *QuarksJob) IsAutoErrand() bool {
	return q.Spec.Trigger.Strategy == StrategyOnce || q.Spec.Trigger.Strategy == StrategyDone
}

// OutputVersionsToKeep is how many versions of each versioned output Secret
// are kept.
func (o *Output) OutputVersionsToKeep() int {
	if o == nil || o.VersionsToKeep == nil {
		return DefaultVersionsToKeep
	}
	return int(*o.VersionsToKeep)
}

// DefaultVersionsToKeep is the default of output.versionsToKeep.
const DefaultVersionsToKeep = 5

// Files returns the file names each container declares, for AnnotationOutputFiles.
func (m OutputMap) Files() map[string][]string {
	files := make(map[string][]string, len(m))
	for container, outputs := range m {
		for file := range outputs {
			files[container] = append(files[container], file)
		}
		sort.Strings(files[container])
	}
	return files
}

// WithoutReservedKeys is a copy of o whose secretLabels and secretAnnotations
// lack the keys the controller writes on output Secrets
// (ReservedSecretLabels, ReservedSecretAnnotations). The CRD refuses them; a
// QuarksJob admitted before that rule may still carry them, and they are
// dropped wherever the controller uses or records an output spec.
func (o *Output) WithoutReservedKeys() *Output {
	if o == nil {
		return nil
	}
	out := o.DeepCopy()
	deleteKeys(out.SecretLabels, ReservedSecretLabels)
	for _, files := range out.OutputMap {
		for name, options := range files {
			deleteKeys(options.AdditionalSecretLabels, ReservedSecretLabels)
			deleteKeys(options.AdditionalSecretAnnotations, ReservedSecretAnnotations)
			files[name] = options
		}
	}
	return out
}

func deleteKeys(m map[string]string, keys []string) {
	for _, k := range keys {
		delete(m, k)
	}
}
