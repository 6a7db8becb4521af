module code.cloudfoundry.org/quarks-job/persister

go 1.26.0

require code.cloudfoundry.org/quarks-job/api v0.0.0

replace code.cloudfoundry.org/quarks-job/api => ../api
