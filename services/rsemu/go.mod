module github.com/redms/redms/services/rsemu

go 1.26

replace github.com/redms/redms/pkg => ../../pkg
