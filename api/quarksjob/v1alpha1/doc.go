// Package v1alpha1 holds the QuarksJob API, quarks.cloudfoundry.org/v1alpha1.
//
// Field names, JSON names and enum values match the original QuarksJob so that
// manifests written for it keep working.
//
// +kubebuilder:object:generate=true
// +groupName=quarks.cloudfoundry.org
package v1alpha1
