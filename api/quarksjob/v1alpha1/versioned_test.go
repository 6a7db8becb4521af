package v1alpha1

import "testing"

func TestParseVersionedName(t *testing.T) {
	tests := []struct {
		name    string
		base    string
		version int64
		ok      bool
	}{
		{"creds-v1", "creds", 1, true},
		{"creds-v12", "creds", 12, true},
		{"my-creds-v2-v3", "my-creds-v2", 3, true},
		{"my-foo-v9", "my-foo", 9, true}, // the family is "my-foo", never "foo"
		{"foobar-v3", "foobar", 3, true},
		{"creds", "", 0, false},
		{"creds-v", "", 0, false},
		{"creds-v1x", "", 0, false},
		{"creds-v01", "", 0, false},
		{"creds-v0", "", 0, false},
		{"-v1", "", 0, false},
		{"creds-V1", "", 0, false},
		{"creds-v99999999999999999999", "", 0, false},
	}
	for _, tt := range tests {
		base, version, ok := ParseVersionedName(tt.name)
		if base != tt.base || version != tt.version || ok != tt.ok {
			t.Errorf("ParseVersionedName(%q) = %q, %d, %v; want %q, %d, %v", tt.name, base, version, ok, tt.base, tt.version, tt.ok)
		}
		if ok && VersionedName(base, version) != tt.name {
			t.Errorf("VersionedName(%q, %d) = %q", base, version, VersionedName(base, version))
		}
	}
}
