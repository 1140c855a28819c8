module github.com/redms/redms

go 1.26

replace github.com/redms/redms/pkg => ./pkg
