DROP TABLE job_files;
DROP TABLE files;
