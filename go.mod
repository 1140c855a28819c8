module github.com/redms/redms

go 1.26

replace github.com/redms/redms/pkg => ./pkg

require gopkg.in/yaml.v3 v3.0.1 // indirect
